"""Connect unary ``push.v1.PusherService/Push``: ``application/proto`` or
``application/json`` ``PushRequest`` (``Content-Encoding`` already undone by the caller).

Labels ``__name__`` (the profile name, e.g. ``process_cpu``) and ``service_name`` come from
the series; the profile type id of each pprof sample type is
``<__name__>:<type>:<unit>:<period type>:<period unit>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fleetprof.distributor.common import (
    DEFAULT_SERVICE,
    NAME_LABEL,
    IngestConfig,
    check_labels,
    check_profile,
    decoding,
    profile_type_id,
    split_items,
    time_ms_of,
)
from fleetprof.server.errors import ApiError

PROTO_TYPES = ("application/proto", "application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _decoded_series(decoder: Any, body: bytes, content_type: str | None, cfg: IngestConfig) -> list[Any]:
    """The series ``decoder`` reads from a proto or JSON ``PushRequest`` body; 415 for another
    content type, 400 for more series than ``cfg.max_series_per_request``."""
    mt = media_type(content_type)
    if mt not in PROTO_TYPES + JSON_TYPES:
        raise ApiError(415, f"unsupported content type {content_type!r}: use application/proto or application/json", code="invalid_argument")
    canonical = "application/json" if mt in JSON_TYPES else "application/proto"
    series = decoding(decoder, body, content_type=canonical, limits=cfg.decoder_limits())
    if len(series) > cfg.max_series_per_request:
        raise ApiError(400, f"request has {len(series)} profiles, more than the limit of {cfg.max_series_per_request}")
    return series


def parse_push(body: bytes, content_type: str | None, cfg: IngestConfig, now_ms: int) -> list[Any]:
    """``IngestItem`` list of a ``PushRequest``; :class:`ApiError` 400/413/415 otherwise."""
    from fleetprof.formats.pushrequest import decode_push_request

    series = _decoded_series(decode_push_request, body, content_type, cfg)
    items: list[Any] = []
    for s in series:
        labels = dict(s.labels)
        check_labels(labels, cfg)
        check_profile(s.profile, cfg)
        name = labels.pop(NAME_LABEL, None) or "unknown"
        items += split_items(labels, s.profile, name=name, time_ms=time_ms_of(s.profile, now_ms))
    return items


def parse_push_deferred(body: bytes, content_type: str | None, cfg: IngestConfig, now_ms: int) -> list[Any]:
    """:func:`parse_push` with the same checks and errors, but each profile left as decoded
    stacks (:class:`fleetprof.segment.writer.StackItem`): the segment writer builds the
    call trees of a whole flush at once, so a push costs its decode and validation only."""
    from fleetprof.formats.pushrequest import decode_push_request_stacks
    from fleetprof.segment.writer import StackItem

    series = _decoded_series(decode_push_request_stacks, body, content_type, cfg)
    items: list[Any] = []
    for s in series:
        labels = dict(s.labels)
        check_labels(labels, cfg)
        truncated = int(s.meta.get("truncated_stacks", 0))
        if truncated:
            raise ApiError(400, f"profile has {truncated} stacks deeper than the limit of {cfg.max_stack_depth} frames")
        name = labels.pop(NAME_LABEL, None) or "unknown"
        labels.setdefault("service_name", DEFAULT_SERVICE)
        t_nanos = int(s.meta.get("time_nanos", 0))
        time_ms = t_nanos // 1_000_000 if t_nanos > 0 else now_ms
        period = s.meta.get("period_type")
        ncols = len(s.sample_types)
        values = np.asarray(s.stacks.values, dtype=np.int64).reshape(len(s.stacks.offsets) - 1, ncols)
        nonzero = np.count_nonzero(values, axis=0) if len(values) else np.zeros(ncols, dtype=np.int64)
        for i, st in enumerate(s.sample_types):
            if not nonzero[i]:
                continue
            items.append(StackItem(labels=labels, profile_type=profile_type_id(name, st, period), time_ms=time_ms, stacks=s.stacks, column=i, sample_type=st, nonzero=int(nonzero[i])))
    return items
