"""Fleet-wide bottleneck analysis over a :class:`~workers.dataset.Dataset` (pure functions).

Every function returns a polars table whose schema is documented in ``workers/README.md``.
Conventions:

* *function* = frame function name (the same name in two files is one function).
* *self* of a function = value of the samples whose leaf frame is that function;
  *total* = value of the samples whose stack contains it (counted once per stack).
* *share* = a value divided by the total of its scope (a service, or the fleet) for the
  same profile type; shares are fractions in [0, 1].
* Nothing here loops per sample: per-stack work is done on the expanded CSR arrays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fleetprof.analysis.frames import FrameClass, classify_frame
from fleetprof.model import ROOT_ID, expand
from fleetprof.model.profile import Expanded, positions
from workers.cost import DEFAULT_VCPU_HOUR_USD, cost_note, cost_tables, observed_durations
from workers.dataset import Dataset, to_profile, value_type
from workers.rules import CATEGORIES, DEFAULT_RULES, Rule, category_of, matches_any

LOCK_MACHINERY = r"^(sync\.|runtime\.|internal/|java\.util\.concurrent\.locks\.|pthread_mutex|__lll_lock|futex)"


@dataclass(frozen=True)
class AnalysisConfig:
    """Thresholds of the analysis (defaults documented in ``workers/README.md``)."""

    top_n: int = 50
    hot_paths_n: int = 5
    category_min_share: float = 0.03
    shared_min_services: int = 2
    regression_min_delta: float = 0.02
    regression_min_ratio: float = 1.25
    leak_buckets: int = 12
    leak_min_growth: float = 0.5
    leak_min_r2: float = 0.8
    leak_min_share: float = 0.01
    contention_min_share: float = 0.10
    vcpu_hour_usd: float = DEFAULT_VCPU_HOUR_USD
    explorer_url: str = ""
    """Base URL of the explorer for ``flamegraph_url`` links (``""``: links relative to the server root)."""
    anomaly_buckets: int = 12
    anomaly_baseline: int = 12
    anomaly_min_baseline: int = 6
    anomaly_z: float = 5.0
    anomaly_min_delta: float = 0.05
    anomaly_drops: bool = False
    rules: tuple[Rule, ...] = field(default=DEFAULT_RULES)


# ---------------------------------------------------------------- profile types
def is_cpu(pt: str) -> bool:
    vt = value_type(pt)
    return vt.type == "cpu" and vt.unit == "nanoseconds"


def is_inuse(pt: str) -> bool:
    return value_type(pt).type.startswith("inuse_space") or value_type(pt).type == "inuse_space"


def is_alloc(pt: str) -> bool:
    return value_type(pt).type == "alloc_space"


def is_contention(pt: str) -> bool:
    return pt.split(":")[0] in ("mutex", "block", "lock") and value_type(pt).type in ("delay", "contentions", "lock_time")


def primary_cpu_type(ds: Dataset) -> str | None:
    """The CPU profile type (``cpu:nanoseconds``) with the largest total, if any."""
    cands = [pt for pt in ds.profile_types if is_cpu(pt)]
    if not cands:
        return None
    tot = ds.samples.filter(pl.col("profile_type").is_in(cands)).group_by("profile_type").agg(pl.col("value").sum())
    return str(tot.sort(["value", "profile_type"], descending=[True, False])["profile_type"][0])


# ---------------------------------------------------------------- stacks
@dataclass
class TypeStacks:
    """Expanded stacks of one profile type: one row per (leaf node, series).

    ``elem_frame`` codes each stack element's distinct ``(name, file)`` frame, classified in
    ``fclasses`` (:class:`~fleetprof.analysis.frames.FrameClass`); ``elem_name`` codes its
    grouped function name (``names``: unsymbolized frames of one binary share one name)."""

    profile_type: str
    ex: Expanded
    service: np.ndarray  # per row (object array of str)
    version: np.ndarray
    value: np.ndarray  # per row int64
    elem_row: np.ndarray  # per element: its row
    elem_name: np.ndarray  # per element: function-name code
    names: np.ndarray  # code -> function name (object array)
    elem_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per element: frame code
    fclasses: list[FrameClass] = field(default_factory=list)  # frame code -> classification


def type_stacks(ds: Dataset, pt: str) -> TypeStacks:
    """Expand the rows of ``pt``; frames classified once per distinct ``(name, file)``."""
    prof = to_profile(ds, pt)
    ex = expand(prof)
    st = ds.series_table()
    meta = ex.samples.select(pl.col("labels").alias("series_id")).join(st, on="series_id", how="left", maintain_order="left")
    fr = ds.frames.with_columns(pl.col("name").fill_null(""), pl.col("file").fill_null(""))
    pairs = fr.select("name", "file").unique(maintain_order=True)
    fclasses = [classify_frame(n, f) for n, f in pairs.iter_rows()]
    pair_code = fr.join(pairs.with_row_index("pcode"), on=["name", "file"], how="left", maintain_order="left")["pcode"].to_numpy()
    names, fn_code = np.unique(np.array([c.function for c in fclasses], dtype=object), return_inverse=True)
    fpos = positions(fr["frame_id"].to_numpy(), ex.frame_ids)
    if np.any(fpos < 0):
        raise ValueError("dataset frames table misses frames referenced by nodes")
    lengths = np.diff(ex.offsets)
    elem_frame = pair_code[fpos].astype(np.int64)
    return TypeStacks(
        pt,
        ex,
        meta["service"].fill_null("").to_numpy().astype(object),
        meta["version"].fill_null("").to_numpy().astype(object),
        ex.samples["v0"].to_numpy().astype(np.int64),
        np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
        fn_code.astype(np.int64)[elem_frame] if len(elem_frame) else np.zeros(0, np.int64),
        names,
        elem_frame,
        fclasses,
    )


def _leaf_codes(ts: TypeStacks) -> np.ndarray:
    """Function-name code of each row's leaf (-1 for empty stacks)."""
    ends = ts.ex.offsets[1:] - 1
    out = np.full(len(ends), -1, dtype=np.int64)
    nonempty = np.diff(ts.ex.offsets) > 0
    out[nonempty] = ts.elem_name[ends[nonempty]]
    return out


def _nearest_leaf(ts: TypeStacks, mask: np.ndarray) -> np.ndarray:
    """Per row: element index of the masked element nearest the leaf (-1 when none)."""
    n = len(ts.ex.offsets) - 1
    out = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    if len(idx):
        np.maximum.at(out, ts.elem_row[idx], idx)
    return out


def _rows_frame(ts: TypeStacks, codes: np.ndarray) -> pl.DataFrame:
    keep = codes >= 0
    return pl.DataFrame(
        {
            "service": ts.service[keep].tolist(),
            "version": ts.version[keep].tolist(),
            "function": ts.names[codes[keep]].tolist() if keep.any() else [],
            "value": ts.value[keep],
        },
        schema={"service": pl.Utf8, "version": pl.Utf8, "function": pl.Utf8, "value": pl.Int64},
    )


def self_values(ts: TypeStacks) -> pl.DataFrame:
    """``service, version, function, value`` of leaf (self) values, summed."""
    return _rows_frame(ts, _leaf_codes(ts)).group_by("service", "version", "function").agg(pl.col("value").sum())


def total_values(ts: TypeStacks) -> pl.DataFrame:
    """``service, function, total``: inclusive values, each stack counted once per function."""
    pairs = pl.DataFrame({"row": ts.elem_row, "code": ts.elem_name}).unique()
    rows = pl.DataFrame({"row": np.arange(len(ts.value)), "service": ts.service.tolist(), "value": ts.value})
    names = pl.DataFrame({"code": np.arange(len(ts.names)), "function": ts.names.tolist()})
    return (
        pairs.join(rows, on="row")
        .group_by("service", "code")
        .agg(pl.col("value").sum().alias("total"))
        .join(names, on="code")
        .select("service", "function", "total")
    )


def service_totals(ts: TypeStacks) -> pl.DataFrame:
    return pl.DataFrame({"service": ts.service.tolist(), "value": ts.value}).group_by("service").agg(
        pl.col("value").sum().alias("service_total")
    )


# ---------------------------------------------------------------- tables
def top_functions(ts: TypeStacks, cfg: AnalysisConfig) -> pl.DataFrame:
    """Top functions by self, per service and fleet-wide (``scope = "*"``).

    Fleet rows carry ``normalized_share``: the mean over services of the function's
    per-service self share (a service with a tenth of the fleet's CPU weighs the same)."""
    sv = self_values(ts).group_by("service", "function").agg(pl.col("value").sum().alias("self"))
    tot = total_values(ts)
    st = service_totals(ts)
    n_services = max(st.height, 1)
    per = (
        sv.join(tot, on=["service", "function"], how="left")
        .join(st, on="service")
        .with_columns(
            (pl.col("self") / pl.col("service_total")).alias("self_share"),
            (pl.col("total") / pl.col("service_total")).alias("total_share"),
        )
    )
    fleet_total = int(st["service_total"].sum() or 0)
    fleet = (
        per.group_by("function")
        .agg(
            pl.col("self").sum(),
            pl.col("total").sum(),
            (pl.col("self_share").sum() / n_services).alias("normalized_share"),
            pl.col("service").n_unique().alias("services"),
        )
        .with_columns(
            pl.lit("*").alias("scope"),
            (pl.col("self") / max(fleet_total, 1)).alias("self_share"),
            (pl.col("total") / max(fleet_total, 1)).alias("total_share"),
        )
    )
    per = per.with_columns(
        pl.col("service").alias("scope"), pl.col("self_share").alias("normalized_share"), pl.lit(1, dtype=pl.UInt32).alias("services")
    )
    cols = ["scope", "function", "self", "total", "self_share", "total_share", "normalized_share", "services"]
    out = pl.concat([fleet.select(cols).cast({"services": pl.UInt32}), per.select(cols)])
    out = out.sort(["scope", "self", "function"], descending=[False, True, False]).with_columns(
        pl.int_range(1, pl.len() + 1).over("scope").alias("rank")
    )
    return out.filter(pl.col("rank") <= cfg.top_n).with_columns(pl.lit(ts.profile_type).alias("profile_type"))


def hotspot_categories(ts: TypeStacks, cfg: AnalysisConfig) -> pl.DataFrame:
    """Self time per (service, category) (nearest categorized frame to the leaf) and whether
    the category is a *shared* hotspot (share >= ``category_min_share`` in at least
    ``shared_min_services`` services)."""
    cats = sorted({c for c, _ in CATEGORIES})
    code_cat = np.array([cats.index(c) if (c := category_of(fc)) else -1 for fc in ts.fclasses], dtype=np.int64)
    elem_cat = code_cat[ts.elem_frame] if len(ts.elem_frame) else np.zeros(0, np.int64)
    near = _nearest_leaf(ts, elem_cat >= 0)
    row_cat = np.where(near >= 0, elem_cat[np.maximum(near, 0)] if len(elem_cat) else -1, -1)
    keep = row_cat >= 0
    df = pl.DataFrame(
        {"service": ts.service[keep].tolist(), "category": np.array(cats, dtype=object)[row_cat[keep]].tolist() if keep.any() else [],
         "value": ts.value[keep]},
        schema={"service": pl.Utf8, "category": pl.Utf8, "value": pl.Int64},
    )
    out = (
        df.group_by("service", "category")
        .agg(pl.col("value").sum())
        .join(service_totals(ts), on="service")
        .with_columns((pl.col("value") / pl.col("service_total")).alias("share"))
    )
    hot = out.filter(pl.col("share") >= cfg.category_min_share)
    shared = hot.group_by("category").agg(pl.col("service").n_unique().alias("services_hot"))
    return (
        out.join(shared, on="category", how="left")
        .with_columns(pl.col("services_hot").fill_null(0).cast(pl.UInt32))
        .with_columns((pl.col("services_hot") >= cfg.shared_min_services).alias("shared"),
                      (pl.col("share") >= cfg.category_min_share).alias("hot"))
        .with_columns(pl.lit(ts.profile_type).alias("profile_type"))
        .select("profile_type", "category", "service", "value", "share", "hot", "services_hot", "shared")
        .sort(["category", "value"], descending=[False, True])
    )


def _path_strings(ts: TypeStacks, rows: np.ndarray) -> list[str]:
    out = []
    for r in rows:  # one join per reported path (a handful per service)
        a, b = ts.ex.offsets[r], ts.ex.offsets[r + 1]
        out.append(";".join(str(x) for x in ts.names[ts.elem_name[a:b]]))
    return out


def hot_paths(ts: TypeStacks, cfg: AnalysisConfig) -> pl.DataFrame:
    """Heaviest full stacks per service (leaf nodes summed over series): ``service, rank,
    path ("root;...;leaf"), value, share``."""
    df = pl.DataFrame({"row": np.arange(len(ts.value)), "service": ts.service.tolist(), "value": ts.value,
                       "node_id": ts.ex.samples["node_id"].to_numpy()})
    agg = df.group_by("service", "node_id").agg(pl.col("value").sum(), pl.col("row").first())
    top = (
        agg.sort(["service", "value", "node_id"], descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over("service").alias("rank"))
        .filter(pl.col("rank") <= cfg.hot_paths_n)
        .join(service_totals(ts), on="service")
    )
    paths = _path_strings(ts, top["row"].to_numpy())
    return top.with_columns(
        pl.Series("path", paths, dtype=pl.Utf8),
        (pl.col("value") / pl.col("service_total")).alias("share"),
        pl.lit(ts.profile_type).alias("profile_type"),
    ).select("profile_type", "service", "rank", "path", "value", "share")


def _shares(sv: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    tot = sv.group_by(key).agg(pl.col("value").sum().alias("scope_total"))
    return sv.join(tot, on=key).with_columns((pl.col("value") / pl.col("scope_total")).alias("share"))


REGRESSION_SCHEMA = {
    "kind": pl.Utf8, "profile_type": pl.Utf8, "service": pl.Utf8, "function": pl.Utf8, "base": pl.Utf8,
    "candidate": pl.Utf8, "base_value": pl.Int64, "cand_value": pl.Int64, "base_share": pl.Float64,
    "cand_share": pl.Float64, "delta_share": pl.Float64, "ratio": pl.Float64,
}


def _compare(base: pl.DataFrame, cand: pl.DataFrame, cfg: AnalysisConfig) -> pl.DataFrame:
    """Functions whose self share grew by >= ``regression_min_delta`` AND by a factor
    >= ``regression_min_ratio`` (both sides: ``service, function, value, share``)."""
    j = cand.join(base, on=["service", "function"], how="left", suffix="_b").with_columns(
        pl.col("value_b").fill_null(0), pl.col("share_b").fill_null(0.0)
    )
    j = j.filter(pl.col("service").is_in(base["service"].unique().implode()))
    return j.with_columns(
        (pl.col("share") - pl.col("share_b")).alias("delta_share"),
        pl.when(pl.col("share_b") > 0).then(pl.col("share") / pl.col("share_b")).otherwise(float("inf")).alias("ratio"),
    ).filter((pl.col("delta_share") >= cfg.regression_min_delta) & (pl.col("ratio") >= cfg.regression_min_ratio))


def regressions(base: TypeStacks | None, cand: TypeStacks, cfg: AnalysisConfig, *, base_label: str, cand_label: str) -> pl.DataFrame:
    """Regressions of ``cand`` vs the previous window ``base`` (kind ``window``) and between
    consecutive ``version`` values inside ``cand`` (kind ``version``; versions ordered by
    name, which sorts semantic versions of equal width and dates correctly)."""
    parts = []
    if base is not None:
        b = _shares(self_values(base).group_by("service", "function").agg(pl.col("value").sum()), ["service"])
        c = _shares(self_values(cand).group_by("service", "function").agg(pl.col("value").sum()), ["service"])
        r = _compare(b, c, cfg)
        parts.append(r.with_columns(pl.lit("window").alias("kind"), pl.lit(base_label).alias("base"), pl.lit(cand_label).alias("candidate")))
    sv = self_values(cand).filter(pl.col("version") != "")
    for (service,), grp in sv.group_by(["service"], maintain_order=True):
        versions = sorted(grp["version"].unique().to_list())
        for vb, vc in zip(versions, versions[1:], strict=False):
            b = _shares(grp.filter(pl.col("version") == vb).drop("version"), ["service"])
            c = _shares(grp.filter(pl.col("version") == vc).drop("version"), ["service"])
            r = _compare(b, c, cfg)
            parts.append(r.with_columns(pl.lit("version").alias("kind"), pl.lit(vb).alias("base"), pl.lit(vc).alias("candidate")))
            del service
    if not parts:
        return pl.DataFrame(schema=REGRESSION_SCHEMA)
    out = pl.concat([
        p.with_columns(pl.lit(cand.profile_type).alias("profile_type")).select(
            "kind", "profile_type", "service", "function", "base", "candidate",
            pl.col("value_b").alias("base_value"), pl.col("value").alias("cand_value"),
            pl.col("share_b").alias("base_share"), pl.col("share").alias("cand_share"), "delta_share", "ratio",
        ).cast(REGRESSION_SCHEMA)
        for p in parts
    ])
    return out.sort(["kind", "service", "delta_share"], descending=[False, False, True])


LEAK_SCHEMA = {
    "profile_type": pl.Utf8, "service": pl.Utf8, "function": pl.Utf8, "start_value": pl.Float64,
    "end_value": pl.Float64, "growth": pl.Float64, "slope_per_hour": pl.Float64, "r2": pl.Float64,
    "end_share": pl.Float64, "buckets": pl.UInt32,
}


def leak_suspects(ds: Dataset, pt: str, start_ms: int, end_ms: int, cfg: AnalysisConfig) -> pl.DataFrame:
    """In-use memory growth per (service, function) across the window (leak suspects).

    The window is cut in ``leak_buckets`` buckets; a series' in-use per function in a bucket is
    the mean over that series' snapshots (a function absent from a snapshot counts 0), summed
    over the service's series. A least-squares line over the buckets flags a suspect when
    its fitted growth (end/start - 1) >= ``leak_min_growth``, r^2 >= ``leak_min_r2`` and the
    function holds >= ``leak_min_share`` of the service's in-use memory at the end."""
    width = max((end_ms - start_ms) // cfg.leak_buckets, 1)
    s = (
        ds.samples.filter(pl.col("profile_type") == pt)
        .join(ds.series_table(), on="series_id", how="left")
        .with_columns(((pl.col("time_ms") - start_ms) // width).clip(0, cfg.leak_buckets - 1).alias("bucket"))
    )
    if s.height == 0:
        return pl.DataFrame(schema=LEAK_SCHEMA)
    names = ds.nodes.select("node_id", "frame_id").join(ds.frames.select("frame_id", pl.col("name").alias("function")), on="frame_id")
    s = s.join(names.select("node_id", "function"), on="node_id", how="inner")
    nsnap = s.select("series_id", "service", "time_ms", "bucket").unique().group_by("series_id", "service", "bucket").len("n")
    per = (
        s.group_by("series_id", "service", "bucket", "function").agg(pl.col("value").sum())
        .join(nsnap, on=["series_id", "service", "bucket"])
        .with_columns((pl.col("value") / pl.col("n")).alias("mean"))
        .group_by("service", "bucket", "function").agg(pl.col("mean").sum().alias("y"))
    )
    grid = nsnap.select("service", "bucket").unique().join(per.select("service", "function").unique(), on="service")
    per = grid.join(per, on=["service", "bucket", "function"], how="left").with_columns(pl.col("y").fill_null(0.0))
    hours = width / 3_600_000
    x = pl.col("bucket").cast(pl.Float64) * hours
    fit = per.group_by("service", "function").agg(
        pl.len().cast(pl.UInt32).alias("buckets"),
        (pl.cov(x, pl.col("y")) / x.var()).alias("slope"),
        pl.corr(x, pl.col("y")).alias("r"),
        x.mean().alias("mx"), pl.col("y").mean().alias("my"), x.min().alias("x0"), x.max().alias("x1"),
    ).with_columns(
        (pl.col("my") + pl.col("slope") * (pl.col("x0") - pl.col("mx"))).alias("start_value"),
        (pl.col("my") + pl.col("slope") * (pl.col("x1") - pl.col("mx"))).alias("end_value"),
        (pl.col("r").fill_nan(0.0).fill_null(0.0) ** 2).alias("r2"),
    )
    last = per.join(per.group_by("service").agg(pl.col("bucket").max().alias("lb")), on="service").filter(pl.col("bucket") == pl.col("lb"))
    last = last.with_columns((pl.col("y") / pl.col("y").sum().over("service")).alias("end_share")).select("service", "function", "end_share")
    fit = fit.join(last, on=["service", "function"], how="left").with_columns(
        pl.when(pl.col("start_value") > 0)
        .then(pl.col("end_value") / pl.col("start_value") - 1.0)
        .otherwise(pl.when(pl.col("end_value") > 0).then(float("inf")).otherwise(0.0))
        .alias("growth")
    )
    flagged = fit.filter(
        (pl.col("buckets") >= 4) & (pl.col("slope") > 0) & (pl.col("r2") >= cfg.leak_min_r2)
        & (pl.col("growth") >= cfg.leak_min_growth) & (pl.col("end_share").fill_null(0) >= cfg.leak_min_share)
    )
    return flagged.with_columns(pl.lit(pt).alias("profile_type"), pl.col("slope").alias("slope_per_hour")).select(
        list(LEAK_SCHEMA)
    ).cast(LEAK_SCHEMA).sort(["service", "growth"], descending=[False, True])


def contention(ts: TypeStacks, cfg: AnalysisConfig) -> pl.DataFrame:
    """Lock/mutex contention per (service, function): the value is attributed to the frame
    nearest the leaf that is not lock machinery (``sync.``, ``runtime.``, futex, …)."""
    rx = re.compile(LOCK_MACHINERY)
    user = np.array([not rx.search(str(n)) for n in ts.names], dtype=bool)
    mask = user[ts.elem_name] if len(ts.elem_name) else np.zeros(0, bool)
    near = _nearest_leaf(ts, mask)
    leaf = _leaf_codes(ts)
    codes = np.where(near >= 0, ts.elem_name[np.maximum(near, 0)] if len(ts.elem_name) else -1, leaf)
    df = _rows_frame(ts, codes).group_by("service", "function").agg(pl.col("value").sum())
    out = df.join(service_totals(ts), on="service").with_columns((pl.col("value") / pl.col("service_total")).alias("share"))
    out = out.sort(["service", "value", "function"], descending=[False, True, False]).with_columns(
        pl.int_range(1, pl.len() + 1).over("service").alias("rank"),
        (pl.col("share") >= cfg.contention_min_share).alias("hotspot"),
        pl.lit(ts.profile_type).alias("profile_type"),
    )
    return out.filter(pl.col("rank") <= 20).select("profile_type", "service", "rank", "function", "value", "share", "hotspot")


RECOMMENDATION_SCHEMA = {
    "rule_id": pl.Utf8, "category": pl.Utf8, "service": pl.Utf8, "profile_type": pl.Utf8, "share": pl.Float64,
    "threshold": pl.Float64, "value": pl.Int64, "avg_vcpus": pl.Float64, "usd_month": pl.Float64,
    "top_function": pl.Utf8, "top_module": pl.Utf8, "top_functions": pl.Utf8, "packages": pl.Utf8,
    "example_stack": pl.Utf8, "flamegraph_url": pl.Utf8, "advice": pl.Utf8,
}
"""The ``recommendations`` table (one row per rule that fired in a service):

* ``share`` — CPU rules: fraction of the service's CPU in stacks with a matching frame;
  contention rules: blocked seconds per second of measured profile time. ``threshold``: the
  rule's firing threshold on the same scale; ``value``: the matched value (ns).
* ``avg_vcpus`` / ``usd_month`` — the dollar impact: ``share`` × the service's measured
  vCPUs and $/month (``cost_services``); null for contention rules (blocked time costs no CPU).
* ``top_function`` / ``top_module`` — the heaviest matching function (nearest the leaf) and
  its classified module; ``top_functions`` — up to three as ``name [module] share``;
  ``packages`` — the matched packages, heaviest first.
* ``example_stack`` — the heaviest matching stack, root first, ``;``-separated.
* ``flamegraph_url`` — the explorer on this service, profile type and window, with the
  sandwich view and search on ``top_function`` (relative to ``AnalysisConfig.explorer_url``).
"""


def explorer_link(base: str, *, tenant: str, service: str, profile_type: str, start_ms: int, end_ms: int,
                  function: str = "") -> str:
    """Explorer URL (``ui/src/state.ts`` keys) showing ``service``'s ``profile_type`` flame graph
    over ``[start_ms, end_ms]``, focused on ``function`` (sandwich view + search) when given."""
    from urllib.parse import urlencode

    q: dict[str, str] = {"service": service, "type": profile_type, "from": str(start_ms), "until": str(end_ms)}
    if function:
        q |= {"fn": function, "search": function, "layout": "sandwich"}
    if tenant and tenant != "anonymous":
        q["tenant"] = tenant
    return f"{base.rstrip('/')}/?{urlencode(q)}"


@dataclass(frozen=True)
class RecContext:
    """What recommendations need beyond the stacks: per-service measured cost and time, and
    the link target (tenant and window)."""

    tenant: str = ""
    start_ms: int = 0
    end_ms: int = 0
    usd_month: dict[str, float] = field(default_factory=dict)
    avg_vcpus: dict[str, float] = field(default_factory=dict)
    observed_seconds: dict[str, float] = field(default_factory=dict)


def recommendations(ts: TypeStacks, cfg: AnalysisConfig, ctx: RecContext | None = None, *, scope: str = "cpu") -> pl.DataFrame:
    """Fire every rule of ``cfg.rules`` with this ``scope`` per service (see :mod:`workers.rules`
    and :data:`RECOMMENDATION_SCHEMA`)."""
    ctx = ctx or RecContext()
    rows: list[dict[str, object]] = []
    st = dict(service_totals(ts).iter_rows())
    services = np.asarray(ts.service)
    for rule in (r for r in cfg.rules if r.scope == scope):  # one vectorised pass per rule
        code_hit = np.array([matches_any(rule.matches, fc) for fc in ts.fclasses], dtype=bool)
        if not code_hit.any():
            continue
        elem_hit = code_hit[ts.elem_frame]
        near = _nearest_leaf(ts, elem_hit)
        row_hit = near >= 0
        for service in sorted(set(services[row_hit].tolist())):
            sel = row_hit & (services == service)
            value = int(ts.value[sel].sum())
            if scope == "cpu":
                share = value / max(st.get(service, 0), 1)
            else:
                share = value / 1e9 / max(ctx.observed_seconds.get(service, 0.0), 1e-9)
            if share < rule.threshold:
                continue
            frames = ts.elem_frame[near[sel]]
            ev = pl.DataFrame({
                "function": ts.names[ts.elem_name[near[sel]]].tolist(),
                "module": [ts.fclasses[f].module for f in frames.tolist()],
                "package": [ts.fclasses[f].package for f in frames.tolist()],
                "value": ts.value[sel],
            })
            top = ev.group_by("function", "module").agg(pl.col("value").sum()).sort(["value", "function"], descending=[True, False])
            pk = ev.group_by("package").agg(pl.col("value").sum()).sort(["value", "package"], descending=[True, False])
            heaviest = np.flatnonzero(sel)[int(np.argmax(ts.value[sel]))]
            top_fn, top_mod = (top["function"][0], top["module"][0]) if top.height else ("", "")
            cpu = scope == "cpu"
            rows.append({
                "rule_id": rule.rule_id, "category": rule.category, "service": service, "profile_type": ts.profile_type,
                "share": share, "threshold": rule.threshold, "value": value,
                "avg_vcpus": share * ctx.avg_vcpus[service] if cpu and service in ctx.avg_vcpus else None,
                "usd_month": share * ctx.usd_month[service] if cpu and service in ctx.usd_month else None,
                "top_function": top_fn, "top_module": top_mod,
                "top_functions": ", ".join(
                    f"{f} [{m}] {v / max(value, 1):.0%}" if m and m != f else f"{f} {v / max(value, 1):.0%}"
                    for f, m, v in top.head(3).iter_rows()),
                "packages": ", ".join(p for p in pk["package"].head(5).to_list() if p),
                "example_stack": _path_strings(ts, np.array([heaviest]))[0],
                "flamegraph_url": explorer_link(cfg.explorer_url, tenant=ctx.tenant, service=service, profile_type=ts.profile_type,
                                                start_ms=ctx.start_ms, end_ms=ctx.end_ms, function=top_fn),
                "advice": rule.advice,
            })
    if not rows:
        return pl.DataFrame(schema=RECOMMENDATION_SCHEMA)
    return pl.DataFrame(rows, schema=RECOMMENDATION_SCHEMA).sort(["service", "share"], descending=[False, True])


def measured_durations(ds: Dataset, pt: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """:func:`workers.cost.observed_durations` of the profiles of type ``pt`` in ``ds``."""
    rows = ds.samples.filter(pl.col("profile_type") == pt).select("series_id", "time_ms").unique()
    rows = rows.join(ds.series_table(), on="series_id", how="left").with_columns(pl.col("service").fill_null(""))
    return observed_durations(rows, start_ms=start_ms, end_ms=end_ms)


# ---------------------------------------------------------------- driver
@dataclass
class AnalysisResult:
    """All tables of one (tenant, window) analysis plus its JSON summary."""

    tables: dict[str, pl.DataFrame]
    summary: dict[str, object]
    stacks: TypeStacks | None = None


def analyze_dataset(
    ds: Dataset,
    previous: Dataset | None,
    *,
    tenant: str,
    window: str,
    previous_window: str,
    start_ms: int,
    end_ms: int,
    cfg: AnalysisConfig | None = None,
) -> AnalysisResult:
    """Run every analysis on the window's dataset ``ds`` (``previous``: the window before)."""
    cfg = cfg or AnalysisConfig()
    from workers.anomalies import ANOMALY_SCHEMA, anomalies

    tables: dict[str, list[pl.DataFrame]] = {k: [] for k in (
        "top_functions", "hotspots", "hot_paths", "regressions", "leaks", "contention", "recommendations",
        "cost_services", "cost_functions", "anomalies")}
    cpu = primary_cpu_type(ds)
    cpu_ts: TypeStacks | None = None
    window_s = (end_ms - start_ms) / 1000
    for pt in ds.profile_types:
        ts = type_stacks(ds, pt)
        tables["top_functions"].append(top_functions(ts, cfg))
        if pt == cpu:
            cpu_ts = ts
            tables["hotspots"].append(hotspot_categories(ts, cfg))
            tables["hot_paths"].append(hot_paths(ts, cfg))
            durations = measured_durations(ds, pt, start_ms, end_ms)
            services, functions = cost_tables(self_values(ts), durations, window_s=window_s, vcpu_hour_usd=cfg.vcpu_hour_usd)
            tables["cost_services"].append(services)
            tables["cost_functions"].append(functions)
            ctx = RecContext(tenant, start_ms, end_ms, dict(services.select("service", "usd_month").iter_rows()),
                             dict(services.select("service", "avg_vcpus").iter_rows()),
                             dict(services.select("service", "observed_seconds").iter_rows()))
            tables["recommendations"].append(recommendations(ts, cfg, ctx))
        if is_cpu(pt) or is_alloc(pt):
            base = type_stacks(previous, pt) if previous is not None and pt in previous.profile_types else None
            tables["regressions"].append(regressions(base, ts, cfg, base_label=previous_window, cand_label=window))
        if pt == cpu:
            tables["anomalies"].append(anomalies(ds, previous, pt, start_ms, end_ms, cfg, tenant=tenant))
        if is_inuse(pt):
            tables["leaks"].append(leak_suspects(ds, pt, start_ms, end_ms, cfg))
        if is_contention(pt):
            tables["contention"].append(contention(ts, cfg))
            if value_type(pt).unit == "nanoseconds":
                secs = dict(measured_durations(ds, pt, start_ms, end_ms).select("service", "observed_seconds").iter_rows())
                tables["recommendations"].append(
                    recommendations(ts, cfg, RecContext(tenant, start_ms, end_ms, observed_seconds=secs), scope="contention"))
    out = {k: _concat(v, k) for k, v in tables.items()}
    if out["anomalies"].width == 1:
        out["anomalies"] = pl.DataFrame(schema=ANOMALY_SCHEMA)
    if out["recommendations"].height:
        out["recommendations"] = out["recommendations"].sort(["service", "share"], descending=[False, True])
    summary = _summary(out, ds, tenant=tenant, window=window, start_ms=start_ms, end_ms=end_ms, cpu=cpu, cfg=cfg)
    return AnalysisResult(out, summary, cpu_ts)


_EMPTY: dict[str, dict[str, pl.DataType | type[pl.DataType]]] = {
    "regressions": REGRESSION_SCHEMA, "leaks": LEAK_SCHEMA, "recommendations": RECOMMENDATION_SCHEMA,
}


def _concat(parts: Sequence[pl.DataFrame], name: str) -> pl.DataFrame:
    parts = [p for p in parts if p.width]
    if parts:
        return pl.concat(parts, how="diagonal_relaxed")
    return pl.DataFrame(schema=_EMPTY.get(name, {"profile_type": pl.Utf8}))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _summary(t: dict[str, pl.DataFrame], ds: Dataset, *, tenant: str, window: str, start_ms: int, end_ms: int,
             cpu: str | None, cfg: AnalysisConfig) -> dict[str, object]:
    st = ds.series_table()
    tf = t["top_functions"]
    fleet_top = (tf.filter((pl.col("scope") == "*") & (pl.col("profile_type") == (cpu or ""))) if "scope" in tf.columns
                 else pl.DataFrame(schema={"function": pl.Utf8, "self_share": pl.Float64}))
    shared = t["hotspots"].filter(pl.col("shared")) if t["hotspots"].height else t["hotspots"]
    cost = t["cost_services"]
    return {
        "tenant": tenant, "window": window, "start_ms": start_ms, "end_ms": end_ms,
        "services": sorted(st["service"].unique().to_list()),
        "profile_types": ds.profile_types,
        "samples": int(ds.samples.height), "cpu_profile_type": cpu,
        "vcpu_hour_usd": cfg.vcpu_hour_usd,
        "top_functions": [{"function": f, "self_share": s} for f, s in fleet_top.select("function", "self_share").head(10).iter_rows()],
        "shared_hotspots": sorted(set(shared["category"].to_list())) if shared.height else [],
        "regressions": [
            {"kind": k, "service": s, "function": f, "base": b, "candidate": c, "delta_share": d, "ratio": _finite(r)}
            for k, s, f, b, c, d, r in t["regressions"].select("kind", "service", "function", "base", "candidate", "delta_share", "ratio").iter_rows()
        ],
        "leak_suspects": [{"service": s, "function": f, "growth": _finite(g)} for s, f, g in t["leaks"].select("service", "function", "growth").iter_rows()],
        "contention_hotspots": [
            {"service": s, "function": f, "share": sh}
            for s, f, sh in (t["contention"].filter(pl.col("hotspot")).select("service", "function", "share").iter_rows() if t["contention"].height else [])
        ],
        "recommendations": [
            {"rule_id": r, "service": s, "share": sh, "usd_month": u, "top_function": f, "flamegraph_url": link}
            for r, s, sh, u, f, link in t["recommendations"].select(
                "rule_id", "service", "share", "usd_month", "top_function", "flamegraph_url").iter_rows()
        ],
        "anomalies": [
            {"service": s, "function": f, "bucket_start_ms": b, "share": sh, "baseline_median": m, "direction": d}
            for s, f, b, sh, m, d in t["anomalies"].select(
                "service", "function", "bucket_start_ms", "share", "baseline_median", "direction").iter_rows()
        ],
        "cost_usd_month": float(cost["usd_month"].sum()) if cost.height else 0.0,
        "cost_window_complete": bool(cost["complete"].all()) if cost.height else True,
        "observed_seconds": float(cost["observed_seconds"].max()) if cost.height else 0.0,
        "cost_note": cost_note(cost),
        "thresholds": {k: v for k, v in cfg.__dict__.items() if k not in ("rules", "explorer_url")},
    }


__all__ = ["ROOT_ID", "AnalysisConfig", "AnalysisResult", "analyze_dataset"]
