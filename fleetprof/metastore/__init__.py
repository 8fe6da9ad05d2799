"""Segment index (metastore): SQLite for embedded mode, DynamoDB for the cloud."""

from fleetprof.metastore.index import (
    ALL_STATES,
    DynamoIndex,
    Index,
    IndexConflict,
    IndexError_,
    SegmentEntry,
    SqliteIndex,
    open_index,
)

__all__ = [
    "ALL_STATES", "DynamoIndex", "Index", "IndexConflict", "IndexError_", "SegmentEntry", "SqliteIndex",
    "open_index",
]
