"""Regression gate: compare each function's share of two profiles (base vs candidate).

Contract of :func:`regress`:

* Functions are frames re-keyed to ``(name, file)`` (line numbers dropped), so a profile
  decoded with or without lines compares the same. For each function, the **self** and
  **total** values (see :func:`fleetprof.model.top.top`: recursion counted once per stack)
  are expressed as a percentage of each profile's grand total in the compared type.
* A (function, self|total) pair is **flagged** when its share grew by **more than**
  ``threshold_pp`` percentage points and its candidate share is at or above the noise
  floor ``min_share_pct`` (shrinking: the mirror image, base share at or above the floor).
  Every flagged pair is kept in :attr:`RegressReport.flagged` / ``flagged_improvements``.
* One change flags many pairs: the changed function's self and total, and the total of
  every caller up to the root. The report collapses them to the **culprits**
  (:attr:`RegressReport.regressions`, ``improvements``):

  - every flagged *self* change is a culprit (the code whose own time changed);
  - a flagged *total* change of F is **carried** (collapsed) when F's own self change, or
    the change of one flagged function G strictly below F in the candidate's stacks (and
    not above it), accounts for it within the threshold (``Δ_G ≥ Δ_F − threshold``); F is
    then listed in the ``via`` column of the culprit(s) below it, nearest callers first;
  - a flagged total change that nothing below explains is a culprit of kind ``total``
    (e.g. a function that now calls a shared helper more often: the helper's self share
    may not move, its caller's inclusive share does).
* Culprits are sorted by Δ descending (self before total on ties, then name); improvements
  by Δ ascending. :attr:`RegressReport.failed` is true when there is at least one
  regression (the CLI exits 1 then).
* :meth:`RegressReport.to_markdown` renders a CI-comment report that leads with the
  culprits (function, base %, cand %, Δpp, self/total, via) and says how many caller
  changes it collapsed; :meth:`RegressReport.to_json` the same data as JSON (``regressions``
  are the culprits, ``carried`` the collapsed pairs with the culprit they carry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fleetprof.model.aggregate import aggregate
from fleetprof.model.paths import stack_of_element
from fleetprof.model.profile import Profile, expand
from fleetprof.model.top import top

FINDING_COLUMNS = ("function", "file", "kind", "base_pct", "cand_pct", "delta_pp", "via", "inside")
MAX_VIA = 6
"""Callers named in a culprit's ``via`` column (the rest are counted)."""


def function_shares(profile: Profile, type_index: int) -> pl.DataFrame:
    """``frame_id, function, file, self_pct, total_pct`` per function (``(name, file)`` key)."""
    t = top(aggregate(profile, "frame"), type_index)
    return t.select("frame_id", pl.col("name").alias("function"), "file", "self_pct", "total_pct")


@dataclass(frozen=True)
class RegressReport:
    """Outcome of :func:`regress`; ``table`` holds every function's shares side by side."""

    table: pl.DataFrame
    regressions: pl.DataFrame
    """The culprits that grew (module contract)."""
    improvements: pl.DataFrame
    """The culprits that shrank."""
    threshold_pp: float
    min_share_pct: float
    sample_type: str
    base_total: int
    cand_total: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    flagged: pl.DataFrame = field(default_factory=pl.DataFrame)
    """Every (function, kind) pair past the threshold that grew, culprits and carried."""
    flagged_improvements: pl.DataFrame = field(default_factory=pl.DataFrame)
    carried: pl.DataFrame = field(default_factory=pl.DataFrame)
    """Flagged growths collapsed into a culprit: ``function, file, kind, delta_pp, into``."""

    @property
    def failed(self) -> bool:
        return self.regressions.height > 0

    def to_dict(self, limit: int | None = None) -> dict[str, object]:
        def rows(df: pl.DataFrame) -> list[dict[str, object]]:
            return (df.head(limit) if limit is not None else df).to_dicts()

        return {
            "failed": self.failed,
            "sample_type": self.sample_type,
            "threshold_pp": self.threshold_pp,
            "min_share_pct": self.min_share_pct,
            "base_total": self.base_total,
            "cand_total": self.cand_total,
            "regressions": rows(self.regressions),
            "improvements": rows(self.improvements),
            "carried": rows(self.carried),
            "flagged": self.flagged.height,
            "notes": list(self.notes),
        }

    def to_json(self, limit: int | None = None) -> str:
        return json.dumps(self.to_dict(limit), indent=2)

    def to_markdown(self, limit: int = 10) -> str:
        n = self.regressions.height
        head = f"❌ {n} regression{'s' if n != 1 else ''}" if n else "✅ no regression"
        lines = [f"### fleetprof regression gate: {head}", ""]
        if n:
            r0 = self.regressions.row(0, named=True)
            what = "self time" if r0["kind"] == "self" else "time including callees"
            lines += [f"**Culprit:** {_md_function(r0['function'], r0['file'])} — {what} {r0['base_pct']:.2f} % → "
                      f"{r0['cand_pct']:.2f} % ({r0['delta_pp']:+.2f} pp)" + (f", called via {_md_text(r0['via'])}" if r0["via"] else "")
                      + (f"; inside it: {_md_text(r0['inside'])}" if r0["inside"] else "") + ".", ""]
        lines.append(
            f"Compared `{self.sample_type}`: base total {self.base_total:,}, candidate total {self.cand_total:,}. "
            f"Flagged: share change above {self.threshold_pp:g} pp with share at or above {self.min_share_pct:g} %."
        )
        if self.carried.height:
            lines.append(f"{self.carried.height} more flagged change{'s' if self.carried.height != 1 else ''} (callers carrying a "
                         f"culprit's change, callees inside it, a culprit's total besides its self) "
                         f"{'are' if self.carried.height != 1 else 'is'} folded into the rows below (`--format json`: `carried`).")
        lines += [f"> {note}" for note in self.notes]
        for title, df in (("Regressions", self.regressions), ("Improvements", self.improvements)):
            lines += ["", f"#### {title} ({df.height})", ""]
            if df.height == 0:
                lines.append("_none_")
                continue
            lines += ["| function | base % | cand % | Δ pp | self/total | via (callers) | inside (callees, Δ pp) |",
                      "|---|---:|---:|---:|---|---|---|"]
            for r in df.head(limit).iter_rows(named=True):
                lines.append(
                    f"| {_md_function(r['function'], r['file'])} | {r['base_pct']:.2f} | {r['cand_pct']:.2f} "
                    f"| {r['delta_pp']:+.2f} | {r['kind']} | {_md_text(r['via'])} | {_md_text(r['inside'])} |"
                )
            if df.height > limit:
                lines.append(f"\n… and {df.height - limit} more")
        return "\n".join(lines) + "\n"


def _md_text(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def _md_function(name: str, file: str) -> str:
    esc = name.replace("|", "\\|").replace("`", "'")
    where = file.replace("|", "\\|")
    return f"`{esc}` ({where})" if file else f"`{esc}`"


def regress(
    base: Profile,
    cand: Profile,
    type_index: int,
    *,
    threshold_pp: float = 1.0,
    min_share_pct: float = 0.5,
    cand_type_index: int | None = None,
) -> RegressReport:
    """Compare function shares of ``base`` and ``cand`` (module contract)."""
    ci = type_index if cand_type_index is None else cand_type_index
    b = function_shares(base, type_index)
    c = function_shares(cand, ci)
    table = (
        b.join(c, on=["frame_id", "function", "file"], how="full", coalesce=True, suffix="_cand")
        .select(
            "frame_id",
            "function",
            "file",
            pl.col("self_pct").fill_null(0.0).alias("base_self_pct"),
            pl.col("self_pct_cand").fill_null(0.0).alias("cand_self_pct"),
            pl.col("total_pct").fill_null(0.0).alias("base_total_pct"),
            pl.col("total_pct_cand").fill_null(0.0).alias("cand_total_pct"),
        )
        .with_columns(
            (pl.col("cand_self_pct") - pl.col("base_self_pct")).alias("delta_self_pp"),
            (pl.col("cand_total_pct") - pl.col("base_total_pct")).alias("delta_total_pp"),
        )
        .sort("function", "file")
    )
    long = pl.concat(
        [
            table.select(
                "frame_id",
                "function",
                "file",
                pl.lit(kind).alias("kind"),
                pl.col(f"base_{kind}_pct").alias("base_pct"),
                pl.col(f"cand_{kind}_pct").alias("cand_pct"),
                pl.col(f"delta_{kind}_pp").alias("delta_pp"),
            )
            for kind in ("self", "total")
        ]
    )
    grew = long.filter((pl.col("delta_pp") > threshold_pp) & (pl.col("cand_pct") >= min_share_pct))
    shrank = long.filter((pl.col("delta_pp") < -threshold_pp) & (pl.col("base_pct") >= min_share_pct))
    ids = pl.concat([grew, shrank])["frame_id"].unique().to_numpy()
    below = _below(aggregate(cand, "frame"), ids)
    for f, gs in _below(aggregate(base, "frame"), ids).items():  # shrinkages live in the base's stacks
        below[f] |= gs
    regressions, carried = culprits(grew, below, threshold_pp)
    improvements, _ = culprits(shrank.with_columns(-pl.col("delta_pp")), below, threshold_pp)
    improvements = improvements.with_columns(-pl.col("delta_pp")).sort(["delta_pp", "kind", "function"])
    notes = []
    bt, ct = base.totals()[type_index], cand.totals()[ci]
    if bt == 0 or ct == 0:
        notes.append(f"{'base' if bt == 0 else 'candidate'} profile has no samples of this type")
    st = base.sample_types[type_index]
    order = ["delta_pp", "kind", "function"]
    return RegressReport(
        table.drop("frame_id"), regressions, improvements, threshold_pp, min_share_pct, str(st), bt, ct, tuple(notes),
        flagged=grew.drop("frame_id").sort(order, descending=[True, False, False]), flagged_improvements=shrank.drop("frame_id").sort(order),
        carried=carried,
    )


def _below(profile: Profile, flagged_ids: np.ndarray) -> dict[int, set[int]]:
    """For each flagged frame id F: the flagged frame ids found strictly below F's first
    (root-most) occurrence in some stack of ``profile`` (vectorised over the elements of
    flagged frames only)."""
    out: dict[int, set[int]] = {int(f): set() for f in flagged_ids}
    if not len(flagged_ids):
        return out
    ex = expand(profile)
    fids = ex.frame_ids
    idx = np.flatnonzero(np.isin(fids, flagged_ids))
    stack, sub = stack_of_element(ex)[idx], fids[idx]
    for f in flagged_ids:  # one pass over the flagged elements per flagged function
        hit = sub == f
        if not hit.any():
            continue
        first = np.full(len(ex.offsets) - 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, stack[hit], idx[hit])
        out[int(f)] = {int(g) for g in np.unique(sub[idx > first[stack]])} - {int(f)}
    return out


def culprits(flagged: pl.DataFrame, below: dict[int, set[int]], threshold_pp: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(culprits, carried)`` of the growths in ``flagged`` (module contract); ``below``
    from :func:`_below`. Shrinkages are passed negated."""
    rows = flagged.to_dicts()
    delta: dict[int, float] = {}
    for r in rows:
        delta[r["frame_id"]] = max(delta.get(r["frame_id"], float("-inf")), r["delta_pp"])
    self_delta = {r["frame_id"]: r["delta_pp"] for r in rows if r["kind"] == "self"}
    names = {r["frame_id"]: r["function"] for r in rows}

    def under(g: int, f: int) -> bool:  # g strictly below f, and not also above it (recursion)
        return g in below.get(f, ()) and f not in below.get(g, ())

    cands: list[dict[str, object]] = []
    spread: list[int] = []  # total culprits: their change is spread below them
    carriers: list[dict[str, object]] = []
    carried: list[dict[str, object]] = []
    for r in rows:
        f, need = r["frame_id"], r["delta_pp"] - threshold_pp
        if r["kind"] == "self":
            cands.append(r)
        elif self_delta.get(f, float("-inf")) >= need:
            carried.append({**r, "into": f"{r['function']} (self)"})
        elif any(under(g, f) and delta[g] >= need for g in delta):
            carriers.append(r)
        else:
            cands.append(r)
            spread.append(f)
    final: list[dict[str, object]] = []
    inside: dict[int, list[tuple[float, str]]] = {}
    for r in cands:
        own = r["kind"] == "self"  # a total culprit's own self change is part of it
        host = [f for f in spread if (under(r["frame_id"], f) or (own and f == r["frame_id"])) and r["delta_pp"] <= delta[f] + threshold_pp]
        if host:
            top_host = max(host, key=lambda f: (delta[f], -len(below.get(f, ()))))
            carried.append({**r, "into": f"{names[top_host]} (inside)"})
            inside.setdefault(top_host, []).append((r["delta_pp"], r["function"]))
        else:
            final.append(r)
    for r in carriers:
        into = [k for k in final if under(k["frame_id"], r["frame_id"])]
        carried.append({**r, "into": ", ".join(sorted({str(k["function"]) for k in into}))})
    for k in final:
        above = sorted((len(below.get(c["frame_id"], ())), str(c["function"])) for c in carriers if under(k["frame_id"], c["frame_id"]))
        callers = [n for n in dict.fromkeys(n for _, n in above) if n != k["function"]]  # fewest flagged below: nearest first
        k["via"] = " ← ".join(callers[:MAX_VIA]) + (f" (+{len(callers) - MAX_VIA} more)" if len(callers) > MAX_VIA else "")
        parts = sorted(inside.get(k["frame_id"], []), key=lambda t: (-t[0], t[1]))
        k["inside"] = ", ".join(f"{n} {d:+.1f}" for d, n in parts[:3]) + (f" (+{len(parts) - 3} more)" if len(parts) > 3 else "")
    schema = {"function": pl.Utf8, "file": pl.Utf8, "kind": pl.Utf8, "base_pct": pl.Float64, "cand_pct": pl.Float64,
              "delta_pp": pl.Float64, "via": pl.Utf8, "inside": pl.Utf8}
    out = pl.DataFrame([{c: r[c] for c in schema} for r in final], schema=schema)
    out = out.sort(["delta_pp", "kind", "function"], descending=[True, False, False])
    cschema = {"function": pl.Utf8, "file": pl.Utf8, "kind": pl.Utf8, "delta_pp": pl.Float64, "into": pl.Utf8}
    car = pl.DataFrame([{c: r[c] for c in cschema} for r in carried], schema=cschema).sort("delta_pp", descending=True)
    return out, car
