"""Connect unary ``push.v1.PusherService/Push``: ``application/proto`` or
``application/json`` ``PushRequest`` (``Content-Encoding`` already undone by the caller).

Labels ``__name__`` (the profile name, e.g. ``process_cpu``) and ``service_name`` come from
the series; the profile type id of each pprof sample type is
``<__name__>:<type>:<unit>:<period type>:<period unit>``.
"""

from __future__ import annotations

from typing import Any

from fleetprof.distributor.common import (
    NAME_LABEL,
    IngestConfig,
    check_labels,
    check_profile,
    decoding,
    split_items,
    time_ms_of,
)
from fleetprof.server.errors import ApiError

PROTO_TYPES = ("application/proto", "application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def parse_push(body: bytes, content_type: str | None, cfg: IngestConfig, now_ms: int) -> list[Any]:
    """``IngestItem`` list of a ``PushRequest``; :class:`ApiError` 400/413/415 otherwise."""
    from fleetprof.formats.pushrequest import decode_push_request

    mt = media_type(content_type)
    if mt not in PROTO_TYPES + JSON_TYPES:
        raise ApiError(415, f"unsupported content type {content_type!r}: use application/proto or application/json", code="invalid_argument")
    canonical = "application/json" if mt in JSON_TYPES else "application/proto"
    series = decoding(decode_push_request, body, content_type=canonical, limits=cfg.decoder_limits())
    if len(series) > cfg.max_series_per_request:
        raise ApiError(400, f"request has {len(series)} profiles, more than the limit of {cfg.max_series_per_request}")
    items: list[Any] = []
    for s in series:
        labels = dict(s.labels)
        check_labels(labels, cfg)
        check_profile(s.profile, cfg)
        name = labels.pop(NAME_LABEL, None) or "unknown"
        items += split_items(labels, s.profile, name=name, time_ms=time_ms_of(s.profile, now_ms))
    return items
