"""Human-readable values with units, for titles and tooltips (Python and vectorised).

``nanoseconds`` → ``ns/µs/ms/s/min/h`` ("1.23 s"), ``bytes`` → ``B/KiB/MiB/GiB/TiB``
("12.3 MiB"), anything else → the number with thousands separators and the unit
("1,234 samples"). The embedded JavaScript of the SVG/HTML renderers mirrors
:func:`format_value` (see ``UNITS_JS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # polars is imported by the vectorised functions that use it
    import polars as pl

_TIME = [(3600e9, "h"), (60e9, "min"), (1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns")]
_BYTES = [(1024.0**4, "TiB"), (1024.0**3, "GiB"), (1024.0**2, "MiB"), (1024.0, "KiB"), (1.0, "B")]


def scale_table(unit: str) -> list[tuple[float, str]] | None:
    """Divisors (largest first) and suffixes for ``unit``; None for plain counts."""
    if unit in ("nanoseconds", "ns"):
        return _TIME
    if unit in ("bytes", "B"):
        return _BYTES
    return None


def _sig(v: float) -> str:
    """Three significant digits, no exponent (1.23, 12.3, 123)."""
    if v >= 100 or v == 0:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def format_value(value: float, unit: str) -> str:
    """``value`` measured in ``unit`` as text with a suitable scaled unit."""
    table = scale_table(unit)
    if table is None:
        label = "" if unit in ("", "count") else f" {unit}"
        return f"{int(round(value)):,}{label}"
    av = abs(value)
    for div, suffix in table[:-1]:
        if av >= div:
            return f"{_sig(value / div)} {suffix}"
    return f"{int(round(value))} {table[-1][1]}"


def format_values(values: np.ndarray, unit: str) -> pl.Series:
    """Vectorised :func:`format_value` (same output) as a polars string Series."""
    import polars as pl

    v = np.asarray(values, dtype=np.float64)
    table = scale_table(unit)
    if table is None:
        label = "" if unit in ("", "count") else f" {unit}"
        s = pl.Series("v", np.round(v).astype(np.int64))
        # thousands separators: reverse, chunk by 3, join, reverse back
        txt = (
            s.abs().cast(pl.Utf8).str.reverse().str.replace_all(r"(\d{3})", "$1,").str.reverse()
            .str.strip_prefix(",")
        )
        sign = pl.Series(np.where(s.to_numpy() < 0, "-", ""))
        return pl.DataFrame({"a": sign, "b": txt}).select(
            pl.concat_str([pl.col("a"), pl.col("b"), pl.lit(label)])
        ).to_series()
    av = np.abs(v)
    div = np.ones_like(v)
    suffix = np.full(len(v), table[-1][1], dtype=object)
    for d, sfx in reversed(table):
        m = av >= d
        div[m] = d
        suffix[m] = sfx
    q = v / div
    aq = np.abs(q)
    df = pl.DataFrame({"q": q, "aq": aq, "s": suffix.astype(str)})
    num = (
        pl.when((pl.col("aq") >= 100) | (pl.col("s") == table[-1][1])).then(pl.col("q").round(0).cast(pl.Int64).cast(pl.Utf8))
        .when(pl.col("aq") >= 10).then(_fixed(pl.col("q"), 1))
        .otherwise(_fixed(pl.col("q"), 2))
    )
    return df.select(pl.concat_str([num, pl.lit(" "), pl.col("s")])).to_series()


def _fixed(expr: pl.Expr, digits: int) -> pl.Expr:
    """Fixed-point text of a float expression with exactly ``digits`` decimals."""
    import polars as pl

    scale = 10**digits
    n = (expr * scale).round(0).cast(pl.Int64)
    sign = pl.when(n < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    a = n.abs()
    return pl.concat_str([sign, (a // scale).cast(pl.Utf8), pl.lit("."), (a % scale).cast(pl.Utf8).str.zfill(digits)])


def fixed(values: np.ndarray, digits: int) -> pl.Series:
    """Vectorised ``f"{v:.{digits}f}"`` (half-away rounding may differ on exact ties)."""
    import polars as pl

    return pl.DataFrame({"v": np.asarray(values, dtype=np.float64)}).select(_fixed(pl.col("v"), digits)).to_series()


UNITS_JS = r"""
function fmtSig(v){var a=Math.abs(v);return a>=100||v===0?v.toFixed(0):(a>=10?v.toFixed(1):v.toFixed(2));}
function fmtValue(v,unit){
  var T=null;
  if(unit==='nanoseconds'||unit==='ns')T=[[3600e9,'h'],[60e9,'min'],[1e9,'s'],[1e6,'ms'],[1e3,'\u00b5s'],[1,'ns']];
  else if(unit==='bytes'||unit==='B')T=[[1099511627776,'TiB'],[1073741824,'GiB'],[1048576,'MiB'],[1024,'KiB'],[1,'B']];
  if(!T){var l=(unit===''||unit==='count')?'':' '+unit;return Math.round(v).toLocaleString('en-US')+l;}
  var a=Math.abs(v);
  for(var i=0;i<T.length-1;i++){if(a>=T[i][0])return fmtSig(v/T[i][0])+' '+T[i][1];}
  return Math.round(v)+' '+T[T.length-1][1];
}
"""
