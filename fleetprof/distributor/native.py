"""Native ``POST /api/v1/ingest``: the body is any format the engine decodes (auto-detected
or ``format=``), labels are the query parameters.

Reserved parameters: ``format``, ``name`` (profile name, default ``process_cpu`` for CPU
sample types, else the sample type name), ``time`` (same syntax as Pyroscope's ``from``;
default: the profile's own time or now), ``sampleRate`` (folded/lines counts → CPU ns, default
100). ``service_name`` (or ``service``) is required; every other parameter is a label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetprof.distributor import common
from fleetprof.distributor.common import IngestConfig
from fleetprof.formats.profile_types import infer_name
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import InflateBudget

RESERVED = {"format", "name", "time", "sampleRate", "service"}


def parse_native(body: bytes, query: Mapping[str, str], cfg: IngestConfig, now_ms: int, budget: InflateBudget | None = None) -> list[Any]:
    """``IngestItem`` list of one native ingest request; its time (``time``, else the
    profile's own) must lie in ``[0, now + cfg.max_future_ms]``. ``budget`` bounds what the
    request decompresses (default: ``cfg.budget()``)."""
    from fleetprof.formats.detect import decode

    labels = {k: v for k, v in query.items() if k not in RESERVED}
    service = labels.get("service_name") or query.get("service")
    if not service:
        raise ApiError(400, "missing label service_name (pass ?service_name=<name>)")
    labels["service_name"] = service
    common.check_labels(labels, cfg)
    fmt = query.get("format") or None
    if not body:
        raise ApiError(400, "empty profile body")
    try:
        rate = int(query.get("sampleRate") or 100)
    except ValueError:
        raise ApiError(400, "bad sampleRate") from None
    if query.get("time"):
        common.ingest_time_ms(query.get("time"), now_ms, now_ms, cfg, "time")  # bad: 400 before decoding
    data = (budget or cfg.budget()).inflate(body, "profile")
    profile = common.decoding(decode, data, fmt, limits=cfg.decoder_limits(), sample_rate=rate)
    common.check_profile(profile, cfg)
    t = common.ingest_time_ms(query.get("time"), common.time_ms_of(profile, now_ms), now_ms, cfg, "time")
    metric = query.get("name") or infer_name(profile)
    names = [(i, common.profile_type_id(metric, st, profile.period_type)) for i, st in enumerate(profile.sample_types)]
    return common.split_items(labels, profile, names=names, time_ms=t)
