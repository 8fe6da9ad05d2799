"""Connect unary ``push.v1.PusherService/Push``: ``application/proto`` or
``application/json`` ``PushRequest`` (``Content-Encoding`` already undone by the caller).

Labels ``__name__`` (the profile name, e.g. ``process_cpu``) and ``service_name`` come from
the series; the profile type id of each pprof sample type is
``<__name__>:<type>:<unit>:<period type>:<period unit>``. Span labels (``span_id``,
``span_name``, ``trace_id`` — pprof sample labels from ``pyroscope-otel``, or series
labels) stay per sample and never become series labels (:mod:`fleetprof.model.spans`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np

from fleetprof.distributor.common import (
    DEFAULT_SERVICE,
    NAME_LABEL,
    IngestConfig,
    check_frame_count,
    check_labels,
    check_profile,
    check_sample_count,
    check_time_ms,
    decoding,
    format_error,
    profile_type_id,
    split_items,
)
from fleetprof.formats.errors import ProfileFormatError
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import InflateBudget

PROTO_TYPES = ("application/proto", "application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)
T = TypeVar("T")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@dataclass
class _RawSeries:
    """One raw profile of a pushed series, not decoded yet."""

    index: str
    labels: dict[str, str]
    raw: bytes


def _raw_series(body: bytes, content_type: str | None, cfg: IngestConfig, budget: InflateBudget) -> list[_RawSeries]:
    """The raw profiles of a proto or JSON ``PushRequest`` with their labels, checked before
    any profile is decoded: 415 for another content type, 400 for more profiles than
    ``cfg.max_series_per_request`` (counted from the message's wire structure) or bad labels."""
    from fleetprof.formats.pushrequest import parse_push_request, validate_labels

    mt = media_type(content_type)
    if mt not in PROTO_TYPES + JSON_TYPES:
        raise ApiError(415, f"unsupported content type {content_type!r}: use application/proto or application/json", code="invalid_argument")
    canonical = "application/json" if mt in JSON_TYPES else "application/proto"
    data = budget.inflate(body, "push request")
    req = decoding(parse_push_request, data, content_type=canonical, limits=cfg.decoder_limits())
    count = sum(len(s.samples) for s in req.series)
    if count > cfg.max_series_per_request:
        raise ApiError(400, f"request has {count} profiles, more than the limit of {cfg.max_series_per_request}")
    out = []
    for i, s in enumerate(req.series):
        pairs = [(lp.name, lp.value) for lp in s.labels]
        labels = decoding(validate_labels, pairs, cfg.decoder_limits(), where=f"series[{i}].labels")
        check_labels(labels, cfg)
        out += [_RawSeries(f"series[{i}].samples[{j}]", labels, smp.raw_profile) for j, smp in enumerate(s.samples)]
    return out


def _decode_raw(decoder: Callable[..., T], rs: _RawSeries, cfg: IngestConfig, budget: InflateBudget) -> T:
    """``decoder`` applied to the gunzipped raw profile (within ``budget``); errors name the
    series and sample."""
    where = f"{rs.index}.raw_profile"
    data = budget.inflate(rs.raw, where)
    try:
        return decoder(data, limits=cfg.decoder_limits())
    except ProfileFormatError as e:
        at = where + (f" ({e.where})" if e.where else "")
        raise format_error(ProfileFormatError("pushrequest", f"bad raw profile: {e.reason}", at)) from None
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, UnicodeDecodeError) as e:
        raise ApiError(400, f"cannot decode profile at {where}: {type(e).__name__}: {e}") from None


def _time_ms(time_nanos: int, now_ms: int, cfg: IngestConfig, where: str) -> int:
    """A pushed profile's time (ms; ``now_ms`` when unset), 400 when out of range."""
    if time_nanos == 0:
        return now_ms
    return check_time_ms(time_nanos // 1_000_000, now_ms, cfg, f"{where} time_nanos")


def parse_push(body: bytes, content_type: str | None, cfg: IngestConfig, now_ms: int, budget: InflateBudget | None = None) -> list[Any]:
    """``IngestItem`` list of a ``PushRequest``; :class:`ApiError` 400/413/415 otherwise."""
    from fleetprof.formats.pprof import decode_pprof

    budget = budget or cfg.budget()
    items: list[Any] = []
    samples = frames = 0
    for rs in _raw_series(body, content_type, cfg, budget):
        profile = _decode_raw(decode_pprof, rs, cfg, budget)
        samples += profile.samples.height
        frames += profile.nodes.height
        check_sample_count(samples, cfg)
        check_frame_count(frames, cfg)
        check_profile(profile, cfg)
        labels = dict(rs.labels)
        name = labels.pop(NAME_LABEL, None) or "unknown"
        t = _time_ms(profile.time_nanos, now_ms, cfg, rs.index)
        items += split_items(labels, profile, name=name, time_ms=t)
    return items


def parse_push_deferred(body: bytes, content_type: str | None, cfg: IngestConfig, now_ms: int, budget: InflateBudget | None = None) -> list[Any]:
    """:func:`parse_push` with the same checks and errors, but each profile left as decoded
    stacks (:class:`fleetprof.segment.writer.StackItem`): the segment writer builds the
    call trees of a whole flush at once, so a push costs its decode and validation only.
    ``budget`` bounds what the request decompresses (default: ``cfg.budget()``)."""
    from fleetprof.formats.pprof import decode_pprof_stacks
    from fleetprof.model.spans import span_row, split_span_labels
    from fleetprof.segment.writer import StackItem

    budget = budget or cfg.budget()
    items: list[Any] = []
    samples = frames = 0
    for rs in _raw_series(body, content_type, cfg, budget):
        stacks, types, meta = _decode_raw(partial(decode_pprof_stacks, group=False), rs, cfg, budget)
        samples += len(stacks.offsets) - 1
        frames += int(stacks.offsets[-1])
        check_sample_count(samples, cfg)
        check_frame_count(frames, cfg)
        truncated = int(meta.get("truncated_stacks", 0))
        if truncated:
            raise ApiError(400, f"profile has {truncated} stacks deeper than the limit of {cfg.max_stack_depth} frames")
        labels, span = split_span_labels(rs.labels)
        name = labels.pop(NAME_LABEL, None) or "unknown"
        labels.setdefault("service_name", DEFAULT_SERVICE)
        time_ms = _time_ms(int(meta.get("time_nanos", 0)), now_ms, cfg, rs.index)
        period = meta.get("period_type")
        ncols = len(types)
        values = np.asarray(stacks.values, dtype=np.int64).reshape(len(stacks.offsets) - 1, ncols)
        nonzero = np.count_nonzero(values, axis=0) if len(values) else np.zeros(ncols, dtype=np.int64)
        for i, st in enumerate(types):
            if not nonzero[i]:
                continue
            items.append(StackItem(labels=labels, profile_type=profile_type_id(name, st, period), time_ms=time_ms, stacks=stacks,
                                   column=i, sample_type=st, nonzero=int(nonzero[i]), span=span_row(span)))
    return items
