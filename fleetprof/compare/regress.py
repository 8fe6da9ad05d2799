"""Regression gate: compare each function's share of two profiles (base vs candidate).

Contract of :func:`regress`:

* Functions are frames re-keyed to ``(name, file)`` (line numbers dropped), so a profile
  decoded with or without lines compares the same. For each function, the **self** and
  **total** values (see :func:`fleetprof.model.top.top`: recursion counted once per stack)
  are expressed as a percentage of each profile's grand total in the compared type.
* A **regression** is a (function, self|total) pair whose share grew by **more than**
  ``threshold_pp`` percentage points and whose candidate share is at or above the noise
  floor ``min_share_pct``. An **improvement** is the mirror image (shrank by more than the
  threshold, base share at or above the floor). A function flagged on both self and total
  appears twice, once per kind.
* Regressions are sorted by Δ descending (self before total on ties, then name);
  improvements by Δ ascending. :attr:`RegressReport.failed` is true when there is at
  least one regression (the CLI exits 1 then).
* :meth:`RegressReport.to_markdown` renders a CI-comment report (top rows, a table with
  function, base %, cand %, Δpp and self/total); :meth:`RegressReport.to_json` the same
  data as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from fleetprof.model.aggregate import aggregate
from fleetprof.model.profile import Profile
from fleetprof.model.top import top

FINDING_COLUMNS = ("function", "file", "kind", "base_pct", "cand_pct", "delta_pp")


def function_shares(profile: Profile, type_index: int) -> pl.DataFrame:
    """``function, file, self_pct, total_pct`` per function (``(name, file)`` key)."""
    t = top(aggregate(profile, "frame"), type_index)
    return t.select(pl.col("name").alias("function"), "file", "self_pct", "total_pct")


@dataclass(frozen=True)
class RegressReport:
    """Outcome of :func:`regress`; ``table`` holds every function's shares side by side."""

    table: pl.DataFrame
    regressions: pl.DataFrame
    improvements: pl.DataFrame
    threshold_pp: float
    min_share_pct: float
    sample_type: str
    base_total: int
    cand_total: int
    notes: tuple[str, ...] = field(default_factory=tuple)

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
            "notes": list(self.notes),
        }

    def to_json(self, limit: int | None = None) -> str:
        return json.dumps(self.to_dict(limit), indent=2)

    def to_markdown(self, limit: int = 10) -> str:
        n = self.regressions.height
        head = f"❌ {n} regression{'s' if n != 1 else ''}" if n else "✅ no regression"
        lines = [
            f"### fleetprof regression gate: {head}",
            "",
            f"Compared `{self.sample_type}`: base total {self.base_total:,}, candidate total {self.cand_total:,}. "
            f"Flagged: share change above {self.threshold_pp:g} pp with share at or above {self.min_share_pct:g} %.",
        ]
        lines += [f"> {note}" for note in self.notes]
        for title, df in (("Regressions", self.regressions), ("Improvements", self.improvements)):
            lines += ["", f"#### {title} ({df.height})", ""]
            if df.height == 0:
                lines.append("_none_")
                continue
            lines += ["| function | base % | cand % | Δ pp | self/total |", "|---|---:|---:|---:|---|"]
            for r in df.head(limit).iter_rows(named=True):
                lines.append(
                    f"| {_md_function(r['function'], r['file'])} | {r['base_pct']:.2f} | {r['cand_pct']:.2f} "
                    f"| {r['delta_pp']:+.2f} | {r['kind']} |"
                )
            if df.height > limit:
                lines.append(f"\n… and {df.height - limit} more")
        return "\n".join(lines) + "\n"


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
        b.join(c, on=["function", "file"], how="full", coalesce=True, suffix="_cand")
        .select(
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
    regressions = long.filter((pl.col("delta_pp") > threshold_pp) & (pl.col("cand_pct") >= min_share_pct)).sort(
        ["delta_pp", "kind", "function"], descending=[True, False, False]
    )
    improvements = long.filter((pl.col("delta_pp") < -threshold_pp) & (pl.col("base_pct") >= min_share_pct)).sort(
        ["delta_pp", "kind", "function"]
    )
    notes = []
    bt, ct = base.totals()[type_index], cand.totals()[ci]
    if bt == 0 or ct == 0:
        notes.append(f"{'base' if bt == 0 else 'candidate'} profile has no samples of this type")
    st = base.sample_types[type_index]
    return RegressReport(table, regressions, improvements, threshold_pp, min_share_pct, str(st), bt, ct, tuple(notes))
