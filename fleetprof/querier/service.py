"""``querier.v1.QuerierService`` and ``settings.v1.SettingsService`` methods over the
query layer (the same :mod:`fleetprof.query` functions the native and ``/pyroscope``
routes use, so every client sees the same numbers).

Semantics (Pyroscope's, where fleetprof stores the same thing):

* Times are ms since the epoch; ``end`` 0 means now, ``start`` 0 means ``end`` minus the
  server's default query range; otherwise ``0 <= start <= end`` or ``invalid_argument``.
* ``matchers`` / ``label_selector`` are Prometheus selectors (``{a="b"}``; ``""`` and
  ``{}`` select everything); several ``matchers`` are OR-ed. A ``__profile_type__="<id>"``
  matcher restricts to that profile type.
* ``SelectMergeStacktraces``: flame graph (``names``, ``levels`` of 4-int groups
  ``[offset delta, total, self, name index]``, ``total``, ``max_self``), ``max_nodes``
  default :data:`DEFAULT_MAX_NODES`; format ``DOT`` fills ``dot`` and ``PPROF`` fills
  ``pprof``; ``TREE`` (Pyroscope's private tree bytes) is ``unimplemented``.
  ``stack_trace_selector.call_site`` keeps the stacks through that root-first path (also
  in ``SelectMergeProfile`` and ``Diff``); ``go_pgo``, and any selector in
  ``SelectSeries``, are ``unimplemented``. ``profile_id_selector`` is ignored (fleetprof
  returns no exemplars that would name profiles).
* ``SelectSeries``: see :func:`fleetprof.query.series.select_series`; ``step`` in
  seconds (bounded to at most 2000 points, at least 1 s).
* ``Diff``: left is the base, right the candidate (7-int groups, ``leftTicks`` and
  ``rightTicks``); both sides must use one profile type.
* ``SelectMergeSpanProfile``: see :mod:`fleetprof.querier.span_profile`.
* Settings: ``Get`` lists the tenant's settings, ``Set`` stores one (``write`` scope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from google.protobuf.message import Message

from fleetprof import telemetry
from fleetprof.formats.proto import profile_pb2, querier_pb2, settings_pb2, types_pb2
from fleetprof.model.profile import Profile
from fleetprof.querier import settings_store
from fleetprof.querier.span_profile import select_merge_span_profile
from fleetprof.server import queries
from fleetprof.server.errors import ApiError
from fleetprof.server.state import ServerState

DEFAULT_MAX_NODES = 8192
MAX_MAX_NODES = 1_000_000
MAX_SELECTORS = 64
PROFILE_TYPE_LABEL = "__profile_type__"
MAX_SERIES_LIMIT = 100_000


@dataclass(frozen=True)
class Method:
    """One procedure: its request type, the scope it needs and its implementation."""

    request: type[Message]
    scope: str
    run: Callable[[ServerState, str, Any], Awaitable[Message]]


def time_range(st: ServerState, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` ms of a request (module docstring); ``invalid_argument`` if bad."""
    from fleetprof.distributor.timeparse import now_ms

    end = end or now_ms()
    start = start or max(0, end - int(st.settings.default_query_range_s * 1000))
    if not 0 <= start <= end <= queries.MAX_QUERY_TIME_MS:
        raise ApiError(400, f"invalid time range: need 0 <= start <= end <= {queries.MAX_QUERY_TIME_MS} (ms)")
    return start, end


def parse_selector(text: str, what: str = "label_selector") -> tuple[str | None, list[Any]]:
    """``(profile type from a __profile_type__= matcher or None, other matchers)``."""
    from fleetprof.query.selector import SelectorError, parse_matchers

    text = (text or "").strip()
    if len(text) > queries.MAX_QUERY_LEN:
        raise ApiError(400, f"{what} is longer than {queries.MAX_QUERY_LEN} characters")
    if not text:
        return None, []
    try:
        matchers = list(parse_matchers(text))
    except SelectorError as e:
        raise ApiError(400, f"bad selector in {what}: {e}") from None
    ptype = next((m.value for m in matchers if m.name == PROFILE_TYPE_LABEL and m.op == "="), None)
    rest = [m for m in matchers if not (m.name == PROFILE_TYPE_LABEL and m.op == "=")]
    return ptype, rest


def _selectors(texts: Sequence[str]) -> list[tuple[str | None, list[Any]]]:
    if len(texts) > MAX_SELECTORS:
        raise ApiError(400, f"at most {MAX_SELECTORS} matchers")
    parsed = [parse_selector(t, "matchers") for t in texts]
    return parsed or [(None, [])]


def selection(st: ServerState, profile_type: str, label_selector: str, start: int, end: int) -> queries.Selection:
    """The query layer's selection of a ``Select*`` request (400 for a bad type/selector)."""
    from fleetprof.query.selector import SelectorError, parse_query

    if not profile_type:
        raise ApiError(400, "profile_typeID is required (e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds)")
    sel_type, matchers = parse_selector(label_selector)
    try:
        ptype, _ = parse_query(profile_type)
    except SelectorError as e:
        raise ApiError(400, f"bad profile_typeID: {e}") from None
    if sel_type is not None and sel_type != ptype:
        raise ApiError(400, "__profile_type__ in label_selector differs from profile_typeID")
    lo, hi = time_range(st, start, end)
    return queries.Selection(ptype, matchers, lo, hi)


def max_nodes_of(msg: Any) -> int:
    if not msg.HasField("max_nodes") or msg.max_nodes == 0:
        return DEFAULT_MAX_NODES
    if not 0 < msg.max_nodes <= MAX_MAX_NODES:
        raise ApiError(400, f"max_nodes must be between 1 and {MAX_MAX_NODES}")
    return int(msg.max_nodes)


def profile_type_message(ptype: str) -> types_pb2.ProfileType:
    """``name:sample_type:sample_unit:period_type:period_unit`` as a ``ProfileType``."""
    name, sample_type, sample_unit, period_type, period_unit = (ptype.split(":") + [""] * 5)[:5]
    return types_pb2.ProfileType(ID=ptype, name=name, sample_type=sample_type, sample_unit=sample_unit,
                                 period_type=period_type, period_unit=period_unit)


async def profile_types(st: ServerState, tenant: str, req: querier_pb2.ProfileTypesRequest) -> Message:
    lo, hi = time_range(st, req.start, req.end)
    types = await queries.call("profile_types", st, tenant, lo, hi)
    return querier_pb2.ProfileTypesResponse(profile_types=[profile_type_message(t) for t in sorted(types)])


async def _series_table(st: ServerState, tenant: str, texts: Sequence[str], start: int, end: int, *, with_types: bool) -> Any:
    """Long label table (``series_id, key, value`` [, ``profile_type``]) of the series
    matching any of the selectors."""
    import polars as pl

    from fleetprof.query.series import matching_series

    lo, hi = time_range(st, start, end)
    parts = []
    for ptype, matchers in _selectors(texts):
        parts.append(await to_thread.run_sync(lambda p=ptype, m=matchers: matching_series(
            st.store, st.index, tenant, lo, hi, m, p, with_profile_types=with_types)))
    return pl.concat(parts).unique()


async def label_names(st: ServerState, tenant: str, req: types_pb2.LabelNamesRequest) -> Message:
    table = await _series_table(st, tenant, req.matchers, req.start, req.end, with_types=False)
    names = set(table["key"].unique().to_list())
    if table.height:
        names.add(PROFILE_TYPE_LABEL)
    return types_pb2.LabelNamesResponse(names=sorted(names))


async def label_values(st: ServerState, tenant: str, req: types_pb2.LabelValuesRequest) -> Message:
    import polars as pl

    if not req.name:
        raise ApiError(400, "name is required")
    if req.name == PROFILE_TYPE_LABEL:
        table = await _series_table(st, tenant, req.matchers, req.start, req.end, with_types=True)
        values = table["profile_type"].unique().to_list()
    else:
        table = await _series_table(st, tenant, req.matchers, req.start, req.end, with_types=False)
        values = table.filter(pl.col("key") == req.name)["value"].unique().to_list()
    return types_pb2.LabelValuesResponse(names=sorted(values))


async def series(st: ServerState, tenant: str, req: querier_pb2.SeriesRequest) -> Message:
    import polars as pl

    wanted = list(dict.fromkeys(req.label_names))
    with_types = not wanted or PROFILE_TYPE_LABEL in wanted
    table = await _series_table(st, tenant, req.matchers, req.start, req.end, with_types=with_types)
    if with_types:
        cols = ["series_id", "profile_type", "key", "value"]
        extra = table.select("series_id", "profile_type").unique().with_columns(
            pl.lit(PROFILE_TYPE_LABEL).alias("key"), pl.col("profile_type").alias("value"))
        keyed = pl.concat([table.select(cols), extra.select(cols)])
        group = ["series_id", "profile_type"]
    else:
        keyed, group = table, ["series_id"]
    if wanted:
        keyed = keyed.filter(pl.col("key").is_in(wanted))
    sets = keyed.sort("key").group_by(group, maintain_order=True).agg(pl.col("key"), pl.col("value"))
    uniq = {tuple(zip(k, v, strict=True)) for k, v in sets.select("key", "value").iter_rows()}
    out = querier_pb2.SeriesResponse()
    for pairs in sorted(uniq):
        out.labels_set.add(labels=[types_pb2.LabelPair(name=k, value=v) for k, v in pairs])
    return out


def _flamegraph_message(doc: dict[str, Any], cls: type[Message]) -> Any:
    fb = doc["flamebearer"]
    msg = cls(names=fb["names"], total=fb["numTicks"], max_self=fb["maxSelf"])
    for level in fb["levels"]:
        msg.levels.add(values=level)
    return msg


def _pprof_message(profile: Profile, max_nodes: int | None) -> profile_pb2.Profile:
    from fleetprof.formats.detect import encode

    return profile_pb2.Profile.FromString(_gunzip(encode(profile, "pprof", type_index=0, max_nodes=max_nodes)))


def _gunzip(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def call_site(msg: Any) -> list[str] | None:
    """The ``stack_trace_selector.call_site`` path (root first) of a request, or None.
    ``go_pgo`` is ``unimplemented``."""
    if not msg.HasField("stack_trace_selector"):
        return None
    sel = msg.stack_trace_selector
    if sel.HasField("go_pgo"):
        raise ApiError(501, "stack_trace_selector.go_pgo is not supported", code="unimplemented")
    return [loc.name for loc in sel.call_site] or None


async def merged_at(st: ServerState, tenant: str, sel: queries.Selection, path: list[str] | None) -> Profile:
    """The merged profile of ``sel``, restricted to the stacks through call site ``path``
    (full stacks kept, as Pyroscope's ``call_site`` selector does)."""
    profile = await queries.merged(st, tenant, sel)
    if not path:
        return profile
    from fleetprof.model.filter import keep_subtree

    return await to_thread.run_sync(lambda: keep_subtree(profile, path))


async def select_merge_stacktraces(st: ServerState, tenant: str, req: querier_pb2.SelectMergeStacktracesRequest) -> Message:
    from fleetprof.render.dot import render_dot
    from fleetprof.render.flamebearer import to_flamebearer

    sel = selection(st, req.profile_typeID, req.label_selector, req.start, req.end)
    max_nodes = max_nodes_of(req)
    fmt = req.format
    if fmt == querier_pb2.PROFILE_FORMAT_TREE:
        raise ApiError(501, "format PROFILE_FORMAT_TREE is not supported: use FLAMEGRAPH, DOT or PPROF", code="unimplemented")
    profile = await merged_at(st, tenant, sel, call_site(req))
    if fmt == querier_pb2.PROFILE_FORMAT_DOT:
        dot_nodes = max_nodes if req.HasField("max_nodes") and req.max_nodes else 100
        text = await to_thread.run_sync(lambda: render_dot(profile, 0, max_nodes=dot_nodes, title=sel.profile_type))
        return querier_pb2.SelectMergeStacktracesResponse(dot=text)
    if fmt == querier_pb2.PROFILE_FORMAT_PPROF:
        prof = await to_thread.run_sync(lambda: _pprof_message(profile, max_nodes))
        return querier_pb2.SelectMergeStacktracesResponse(pprof=querier_pb2.PprofProfile(profile=prof))
    with telemetry.child("render.flamebearer", {"fleetprof.max_nodes": max_nodes}):
        doc = await to_thread.run_sync(lambda: to_flamebearer(profile, 0, max_nodes=max_nodes, name=sel.profile_type))
    return querier_pb2.SelectMergeStacktracesResponse(flamegraph=_flamegraph_message(doc, querier_pb2.FlameGraph))


async def select_merge_profile(st: ServerState, tenant: str, req: querier_pb2.SelectMergeProfileRequest) -> Message:
    sel = selection(st, req.profile_typeID, req.label_selector, req.start, req.end)
    max_nodes = max_nodes_of(req) if req.HasField("max_nodes") and req.max_nodes else None
    profile = await merged_at(st, tenant, sel, call_site(req))
    return await to_thread.run_sync(lambda: _pprof_message(profile, max_nodes))


async def select_series(st: ServerState, tenant: str, req: querier_pb2.SelectSeriesRequest) -> Message:
    import math

    from fleetprof.query.series import select_series as run

    sel = selection(st, req.profile_typeID, req.label_selector, req.start, req.end)
    if call_site(req):
        raise ApiError(501, "SelectSeries with a stack_trace_selector is not supported", code="unimplemented")
    if not math.isfinite(req.step) or req.step < 0:
        raise ApiError(400, "step must be a non-negative number of seconds")
    step = queries.step_for(sel.start_ms, sel.end_ms, req.step or None)
    limit = req.limit if req.HasField("limit") else None
    if limit is not None and not 0 <= limit <= MAX_SERIES_LIMIT:
        raise ApiError(400, f"limit must be between 0 and {MAX_SERIES_LIMIT}")
    average = req.HasField("aggregation") and req.aggregation == types_pb2.TIME_SERIES_AGGREGATION_TYPE_AVERAGE
    groups = await to_thread.run_sync(lambda: run(
        st.store, st.index, tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, step,
        list(req.group_by), average=average, limit=limit or None))
    out = querier_pb2.SelectSeriesResponse()
    for g in groups:
        s = out.series.add(labels=[types_pb2.LabelPair(name=k, value=v) for k, v in g.labels])
        s.points.extend(types_pb2.Point(value=float(v), timestamp=int(t)) for t, v in zip(g.times_ms, g.values, strict=True))
    return out


async def diff(st: ServerState, tenant: str, req: querier_pb2.DiffRequest) -> Message:
    from fleetprof.render.flamebearer import diff_flamebearer

    if not req.HasField("left") or not req.HasField("right"):
        raise ApiError(400, "left and right are required")
    left = selection(st, req.left.profile_typeID, req.left.label_selector, req.left.start, req.left.end)
    right = selection(st, req.right.profile_typeID, req.right.label_selector, req.right.start, req.right.end)
    if left.profile_type != right.profile_type:
        raise ApiError(400, "left and right must use the same profile_typeID")
    max_nodes = max_nodes_of(req.left)
    base = await merged_at(st, tenant, left, call_site(req.left))
    cand = await merged_at(st, tenant, right, call_site(req.right))
    doc = await to_thread.run_sync(lambda: diff_flamebearer(base, cand, 0, max_nodes=max_nodes, name=left.profile_type))
    fg = _flamegraph_message(doc, querier_pb2.FlameGraphDiff)
    fg.leftTicks, fg.rightTicks = doc["leftTicks"], doc["rightTicks"]
    return querier_pb2.DiffResponse(flamegraph=fg)


async def get_profile_stats(st: ServerState, tenant: str, req: types_pb2.GetProfileStatsRequest) -> Message:
    entries = await to_thread.run_sync(lambda: st.index.query(tenant, 0, queries.MAX_QUERY_TIME_MS))
    if not entries:
        return types_pb2.GetProfileStatsResponse(data_ingested=False)
    return types_pb2.GetProfileStatsResponse(
        data_ingested=True,
        oldest_profile_time=min(e.min_time_ms for e in entries),
        newest_profile_time=max(e.max_time_ms for e in entries),
    )


async def get_settings(st: ServerState, tenant: str, req: settings_pb2.GetSettingsRequest) -> Message:
    doc = await to_thread.run_sync(lambda: settings_store.load(st.store, tenant))
    return settings_pb2.GetSettingsResponse(settings=[
        settings_pb2.Setting(name=k, value=str(v.get("value", "")), modifiedAt=int(v.get("modifiedAt", 0)))
        for k, v in sorted(doc.items())
    ])


async def set_settings(st: ServerState, tenant: str, req: settings_pb2.SetSettingsRequest) -> Message:
    s = req.setting
    stamp = await to_thread.run_sync(lambda: settings_store.put(st.store, tenant, s.name, s.value, s.modifiedAt))
    return settings_pb2.SetSettingsResponse(setting=settings_pb2.Setting(name=s.name, value=s.value, modifiedAt=stamp))


QUERIER = "querier.v1.QuerierService"
SETTINGS = "settings.v1.SettingsService"
METHODS: dict[str, Method] = {
    f"{QUERIER}/ProfileTypes": Method(querier_pb2.ProfileTypesRequest, "read", profile_types),
    f"{QUERIER}/LabelNames": Method(types_pb2.LabelNamesRequest, "read", label_names),
    f"{QUERIER}/LabelValues": Method(types_pb2.LabelValuesRequest, "read", label_values),
    f"{QUERIER}/Series": Method(querier_pb2.SeriesRequest, "read", series),
    f"{QUERIER}/SelectMergeStacktraces": Method(querier_pb2.SelectMergeStacktracesRequest, "read", select_merge_stacktraces),
    f"{QUERIER}/SelectMergeProfile": Method(querier_pb2.SelectMergeProfileRequest, "read", select_merge_profile),
    f"{QUERIER}/SelectSeries": Method(querier_pb2.SelectSeriesRequest, "read", select_series),
    f"{QUERIER}/Diff": Method(querier_pb2.DiffRequest, "read", diff),
    f"{QUERIER}/GetProfileStats": Method(types_pb2.GetProfileStatsRequest, "read", get_profile_stats),
    f"{QUERIER}/SelectMergeSpanProfile": Method(querier_pb2.SelectMergeSpanProfileRequest, "read", select_merge_span_profile),
    f"{SETTINGS}/Get": Method(settings_pb2.GetSettingsRequest, "read", get_settings),
    f"{SETTINGS}/Set": Method(settings_pb2.SetSettingsRequest, "write", set_settings),
}
UNSUPPORTED = {f"{QUERIER}/{m}" for m in ("SelectHeatmap", "AnalyzeQuery")}
"""Procedures of Pyroscope's service that fleetprof answers ``unimplemented`` (501)."""
