"""``querier.v1.QuerierService/SelectMergeSpanProfile`` (Pyroscope's message and semantics).

Request ``SelectMergeSpanProfileRequest {profile_typeID, label_selector, span_selector
(repeated 16-hex-digit span ids), start, end (ms), max_nodes, format}``; response
``SelectMergeSpanProfileResponse {flamegraph, tree}``: the flame graph (``names``,
``levels``, ``total``, ``max_self``) of the samples of the matching series taken while one
of the spans ran. An empty ``span_selector`` selects no samples (an empty flame graph, as
Pyroscope answers); a span id that is not 16 hex digits is ``invalid_argument`` (400).
``format`` ``TREE`` (Pyroscope's private tree bytes) is ``unimplemented``; ``DOT`` and
``PPROF`` have no field in this response and are ``invalid_argument``.
"""

from __future__ import annotations

import numpy as np
from anyio import to_thread
from google.protobuf.message import Message

from fleetprof.formats.proto import querier_pb2
from fleetprof.model.spans import SpanIdError, parse_span_ids
from fleetprof.server.errors import ApiError
from fleetprof.server.state import ServerState

MAX_SPANS = 10_000
"""Most span ids one request may select."""


def span_ids_of(texts: list[str]) -> np.ndarray:
    """Sorted u64 span ids of a span selector; 400 for a bad id or too many."""
    if len(texts) > MAX_SPANS:
        raise ApiError(400, f"at most {MAX_SPANS} span ids per request")
    try:
        return parse_span_ids(texts)
    except SpanIdError as e:
        raise ApiError(400, str(e)) from None


async def select_merge_span_profile(st: ServerState, tenant: str, req: querier_pb2.SelectMergeSpanProfileRequest) -> Message:
    from fleetprof.querier.service import _flamegraph_message, max_nodes_of, selection
    from fleetprof.query.spans import select_span_merge
    from fleetprof.render.flamebearer import to_flamebearer

    if req.format == querier_pb2.PROFILE_FORMAT_TREE:
        raise ApiError(501, "format PROFILE_FORMAT_TREE is not supported: use FLAMEGRAPH", code="unimplemented")
    if req.format not in (querier_pb2.PROFILE_FORMAT_UNSPECIFIED, querier_pb2.PROFILE_FORMAT_FLAMEGRAPH):
        raise ApiError(400, "SelectMergeSpanProfile answers format FLAMEGRAPH only")
    ids = span_ids_of(list(req.span_selector))
    sel = selection(st, req.profile_typeID, req.label_selector, req.start, req.end)
    max_nodes = max_nodes_of(req)

    def run() -> dict:
        p = select_span_merge(st.store, st.index, tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, ids)
        return to_flamebearer(p, 0, max_nodes=max_nodes, name=sel.profile_type)

    doc = await to_thread.run_sync(run)
    return querier_pb2.SelectMergeSpanProfileResponse(flamegraph=_flamegraph_message(doc, querier_pb2.FlameGraph))
