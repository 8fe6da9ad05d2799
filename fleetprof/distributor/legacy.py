"""Pyroscope's legacy ``POST /ingest``.

Query: ``name=app.cpu{k=v,...}`` (required), ``from``/``until`` (seconds/ms/µs/ns by digit
count, or ``now-1h``), ``format`` (``folded`` default, ``lines``, ``pprof``,
``speedscope``, ``jfr``), ``sampleRate`` (default 100), ``spyName``, ``units``, ``aggregationType``.
Body: the profile, or ``multipart/form-data`` with a ``profile`` part (pprof) and an
optional ``sample_type_config`` JSON part, as pyroscope-go sends them; for ``jfr`` a JFR
recording (gzipped or not), or a multipart body with a ``jfr`` part and an optional
``labels`` part (the Java agent's ``LabelsSnapshot``), as the Pyroscope Java agent sends them.

JFR: one series per profile kind of the recording (:mod:`fleetprof.formats.jfr`: CPU,
wall, allocations, locks …) under the app's labels plus ``jfr_event`` (async-profiler's
``event`` setting); the name's suffix is ignored, counts are scaled by ``sampleRate``.

Profile types: folded/lines/speedscope take the type from the name's suffix (``.cpu`` →
``process_cpu:cpu:nanoseconds:cpu:nanoseconds`` with counts × 1e9/sampleRate, as
Pyroscope does); pprof keeps its own sample types, named after the suffix or the sample
type (``alloc_space`` → ``memory``); with a ``sample_type_config`` only the listed sample
types are stored (``display-name`` picks the profile name). ``prev_profile`` parts
(cumulative deltas) are ignored. ``aggregationType=average`` (else ``sum``) labels the
series ``__aggregation__="average"``: queries then average its profiles instead of summing
them (Pyroscope's semantics for gauges such as in-use memory).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fleetprof.distributor.common import (
    DEFAULT_CONFIG,
    IngestConfig,
    check_labels,
    check_profile,
    check_time_ms,
    decoding,
    ingest_time_ms,
    profile_type_id,
    scale_values,
    split_items,
    time_ms_of,
)
from fleetprof.distributor.legacy_name import LEGACY_TYPES, NameError_, parse_legacy_name, split_app
from fleetprof.model.profile import Profile, ValueType
from fleetprof.query.select import AGGREGATION_LABEL
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import InflateBudget

FORMATS = {"folded": "folded", "collapsed": "folded", "lines": "lines", "pprof": "pprof", "speedscope": "speedscope", "jfr": "jfr"}
NS_TYPES = {"cpu", "itimer", "wall"}


def parse_ingest_params(q: Mapping[str, str], now_ms: int, cfg: IngestConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """Validated query parameters (400 with a message otherwise); ``from``/``until`` must
    lie in ``[0, now + cfg.max_future_ms]``."""
    raw_name = q.get("name")
    if not raw_name:
        raise ApiError(400, "missing required query parameter 'name' (e.g. name=app.cpu{env=prod})")
    try:
        name, labels = parse_legacy_name(raw_name)
    except NameError_ as e:
        raise ApiError(400, str(e)) from None
    start = ingest_time_ms(q.get("from"), now_ms - 10_000, now_ms, cfg, "from")
    until = ingest_time_ms(q.get("until"), now_ms, now_ms, cfg, "until")
    fmt = (q.get("format") or "folded").lower()
    if fmt not in FORMATS:
        raise ApiError(400, f"unsupported format {fmt!r}: use one of {sorted(set(FORMATS))}")
    try:
        rate = int(q.get("sampleRate") or 100)
    except ValueError:
        raise ApiError(400, f"bad sampleRate {q.get('sampleRate')!r}") from None
    if rate <= 0 or rate > 1_000_000_000:
        raise ApiError(400, "sampleRate must be between 1 and 1e9")
    aggregation = (q.get("aggregationType") or "sum").lower()
    if aggregation not in ("sum", "average"):
        raise ApiError(400, f"unsupported aggregationType {q.get('aggregationType')!r}: use 'sum' or 'average'")
    app, suffix = split_app(name)
    return {
        "app": app, "suffix": suffix, "labels": labels, "from_ms": start, "until_ms": until,
        "format": FORMATS[fmt], "sample_rate": rate, "units": q.get("units") or "",
        "spy": q.get("spyName") or "", "aggregation": aggregation,
    }


def _metric_for(type_name: str, suffix: str | None) -> str:
    if type_name in LEGACY_TYPES:
        return LEGACY_TYPES[type_name][0]
    if suffix in LEGACY_TYPES:
        return LEGACY_TYPES[suffix][0]
    if type_name in ("samples", "cpu"):
        return "process_cpu"
    return type_name or "unknown"


def _text_profile(profile: Profile, p: Mapping[str, Any]) -> tuple[Profile, str]:
    """Relabel a single-column text profile with the legacy type of the name's suffix."""
    suffix = p["suffix"]
    units = p["units"]
    if suffix is None:
        suffix = {"objects": "alloc_objects", "bytes": "alloc_space", "goroutines": "goroutines", "lock_samples": "mutex_count", "lock_nanoseconds": "mutex_duration"}.get(units, "cpu")
    metric, stype, sunit, ptype, punit = LEGACY_TYPES[suffix]
    out = scale_values(profile, 1, 1, ValueType(stype, sunit)).with_meta(period_type=ValueType(ptype, punit))
    return out, f"{metric}:{stype}:{sunit}:{ptype}:{punit}"


def _counts_are_cpu_samples(p: Mapping[str, Any]) -> bool:
    """Folded counts are CPU/wall samples at ``sampleRate`` (→ nanoseconds)."""
    if p["units"] not in ("", "samples"):
        return False
    return p["suffix"] is None or p["suffix"] in NS_TYPES


def _sample_type_config(raw: bytes | None) -> dict[str, dict[str, Any]] | None:
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"invalid sample_type_config JSON: {e}") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise ApiError(400, "sample_type_config must map sample type names to objects")
    return doc


def _pprof_names(profile: Profile, p: Mapping[str, Any], config: dict[str, dict[str, Any]] | None) -> list[tuple[int, str]]:
    out = []
    for i, st in enumerate(profile.sample_types):
        if config is not None and st.type not in config:
            continue
        display = str((config or {}).get(st.type, {}).get("display-name") or st.type)
        out.append((i, profile_type_id(_metric_for(display, p["suffix"]), st, profile.period_type)))
    return out


def parse_legacy(
    body: bytes, content_type: str | None, query: Mapping[str, str], cfg: IngestConfig, now_ms: int,
    parts: Mapping[str, bytes] | None = None, budget: InflateBudget | None = None,
) -> list[Any]:
    """``IngestItem`` list of one legacy ``/ingest`` request. ``parts`` holds the
    multipart fields when the body was ``multipart/form-data``; ``budget`` bounds what the
    request decompresses (default: ``cfg.budget()``)."""
    from fleetprof.formats.detect import decode

    p = parse_ingest_params(query, now_ms, cfg)
    labels = {**p["labels"], "service_name": p["app"]}
    check_labels(labels, cfg)
    budget = budget or cfg.budget()
    if p["aggregation"] == "average":
        labels[AGGREGATION_LABEL] = "average"  # queries average these series' profiles
    if p["format"] == "jfr":
        return _jfr_items(body, parts, p, labels, cfg, budget)
    config = None
    if parts is not None:
        data = parts.get("profile")
        if data is None:
            raise ApiError(400, "multipart body has no 'profile' part")
        config = _sample_type_config(parts.get("sample_type_config"))
        fmt = "pprof" if p["format"] == "folded" and "format" not in query else p["format"]
    else:
        data, fmt = body, p["format"]
    if not data:
        raise ApiError(400, "empty profile body")
    rate = p["sample_rate"] if fmt in ("folded", "lines") and _counts_are_cpu_samples(p) else None
    data = budget.inflate(data, "profile")
    profile = decoding(decode, data, fmt, limits=cfg.decoder_limits(), sample_rate=rate)
    check_profile(profile, cfg)
    if fmt == "pprof":
        names = _pprof_names(profile, p, config)
        t = check_time_ms(time_ms_of(profile, p["from_ms"]), now_ms, cfg, "profile time_nanos")
        return split_items(labels, profile, names=names, time_ms=t)
    if len(profile.sample_types) != 1:
        profile = profile.with_meta()  # speedscope may carry one type per file; keep the first
        from fleetprof.model.merge import select_type

        profile = select_type(profile, 0)
    relabeled, ptype = _text_profile(profile, p)
    return split_items(labels, relabeled, names=[(0, ptype)], time_ms=p["from_ms"])


def _jfr_items(
    body: bytes, parts: Mapping[str, bytes] | None, p: Mapping[str, Any], labels: dict[str, str], cfg: IngestConfig,
    budget: InflateBudget,
) -> list[Any]:
    """One ``IngestItem`` per sample type of every profile kind in a JFR upload."""
    from fleetprof.formats.jfr import decode_jfr_profiles

    data, snapshot = body, None
    if parts is not None:
        data = parts.get("jfr") or b""
        snapshot = parts.get("labels") or None
    if not data:
        raise ApiError(400, "empty JFR recording" if parts is None else "multipart body has no 'jfr' part")
    data = budget.inflate(data, "JFR recording")
    t0 = p["from_ms"] * 1_000_000
    limits = replace(cfg.decoder_limits(), max_samples=cfg.max_frames_per_request)  # JFR: events and frames in all
    rec = decoding(
        decode_jfr_profiles, data, limits=limits, sample_rate=p["sample_rate"], labels=snapshot,
        time_nanos=t0, duration_nanos=max(p["until_ms"] * 1_000_000 - t0, 0),
    )
    if rec.event:
        labels = {**labels, "jfr_event": rec.event}
        check_labels(labels, cfg)
    items: list[Any] = []
    for jp in rec.profiles:
        check_profile(jp.profile, cfg)
        names = [(i, profile_type_id(jp.name, st, jp.profile.period_type)) for i, st in enumerate(jp.profile.sample_types)]
        items += split_items(labels, jp.profile, names=names, time_ms=p["from_ms"])
    return items
