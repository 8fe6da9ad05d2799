"""Segments: the immutable, self-describing objects the ingest path and compaction write."""

from fleetprof.segment.format import (
    FORMAT_VERSION,
    MAGIC,
    Segment,
    SegmentBatch,
    SegmentCorrupt,
    batch_from_profiles,
    concat_batches,
    decode_segment,
    encode_segment,
)
from fleetprof.segment.keys import new_segment_id, segment_id_time_ms, segment_key, validate_tenant

__all__ = [
    "FORMAT_VERSION", "MAGIC", "Segment", "SegmentBatch", "SegmentCorrupt", "batch_from_profiles", "concat_batches",
    "decode_segment", "encode_segment", "new_segment_id", "segment_id_time_ms", "segment_key", "validate_tenant",
]
