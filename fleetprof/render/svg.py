"""Self-contained interactive SVG flame graphs (single profile and diff).

The output is one SVG document with its own JavaScript (``static/flame_svg.js``, in a
CDATA script): click a frame to zoom (ancestors stay as a faded full-width stack),
"Reset Zoom" / Escape to unzoom, "Search" / Ctrl-F for a regular expression (matches are
highlighted, the matched share of the total — nested matches counted once — is shown),
a ``<title>`` tooltip per frame (``name``, value with units and %), and a details line on
hover. ``icicle=True`` draws the root at the top.

Frames narrower than ``min_width_px`` are omitted; their time stays inside the parent
(a gap), so every percentage is exact. Colours: a warm palette keyed by a stable hash
(CRC-32) of the frame's package/module prefix. The SVG text is built column-wise
(polars string kernels over whole columns); no Python runs per frame.

Diff (:func:`render_diff_svg`): base and candidate are aligned by name path; widths are
the mean of both normalised shares; red = the candidate's share grew, blue = shrank,
intensity by the relative change; tooltips show both values and the delta.
"""

from __future__ import annotations

import html
import re
import zlib
from collections.abc import Callable
from functools import cache
from importlib import resources

import numpy as np
import polars as pl

from fleetprof.model.profile import Profile, ValueType
from fleetprof.render.layout import (
    OTHER_NAME,
    ROOT_NAME,
    CallTree,
    Layout,
    call_tree,
    combine,
    layout,
    prune_narrow,
)
from fleetprof.render.units import UNITS_JS, fixed, format_value, format_values

FRAME_H = 16
FONT_SIZE = 12
FONT_W = 0.59 * FONT_SIZE
XPAD = 10
HEAD = 56
FOOT = 28
_BAD_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@cache
def _script() -> str:
    js = resources.files("fleetprof.render").joinpath("static/flame_svg.js").read_text()
    return UNITS_JS + js


def _xml_text(s: str) -> str:
    """``s`` as XML text or attribute value: characters XML forbids become ``?``, markup
    characters become entities."""
    return html.escape(_BAD_XML.sub("?", s), quote=True)


def _xml_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised :func:`_xml_text` (the same output) over a string column."""
    out = expr.str.replace_all(_BAD_XML.pattern, "?")
    for ch, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
        out = out.str.replace_all(ch, ent, literal=True)
    return out


_PY_LOCATION = re.compile(r" \(.*\)$")


def package_of(name: str, file: str = "") -> str:
    """Colour key of a frame: the name's package/module prefix (before the last ``.``,
    ``::`` or ``/``), else the file, else the name. py-spy ``(file:line)`` suffixes and
    call arguments are ignored."""
    base = (_PY_LOCATION.sub("", name) if " (" in name else name).split("(")[0]
    for sep in ("::", ".", "/"):
        if sep in base.strip(sep):
            return base.rsplit(sep, 1)[0]
    return file or base


def warm_colour(key: str, name: str = "") -> str:
    """Stable warm (red–orange–yellow) fill: hue from the colour key (package), a small
    brightness jitter from the full name so adjacent frames of one package differ."""
    h = zlib.crc32(key.encode("utf-8", "replace"))
    j = zlib.crc32(name.encode("utf-8", "replace")) % 25 if name else 12
    r = 205 + (h & 0xFF) % 50
    g = 80 + ((h >> 8) & 0xFF) % 130 + j
    b = 35 + ((h >> 16) & 0xFF) % 45 + j
    return f"rgb({r},{g},{b})"


def _name_colours(lay: Layout) -> np.ndarray:
    """Fill of every name code (one CRC per unique name)."""
    out = np.empty(len(lay.names), dtype=object)
    names = lay.names
    for i in np.unique(lay.name).tolist():  # only the names drawn
        n = str(names[i])
        out[i] = "rgb(200,200,200)" if n in (ROOT_NAME, OTHER_NAME) else warm_colour(package_of(n), n)
    return out


def _labels(names: pl.Series, width_px: pl.Series) -> pl.Series:
    """Text that fits ``width_px`` (flamegraph.pl's rule: ``..`` when truncated; nothing
    below 3 characters), XML-escaped."""
    df = pl.DataFrame({"n": names, "w": width_px})
    fit = ((pl.col("w") - 6) / FONT_W).floor().cast(pl.Int64)
    return df.select(
        _xml_expr(
            pl.when(fit < 3).then(pl.lit(""))
            .when(pl.col("n").str.len_chars() > fit)
            .then(pl.concat_str([pl.col("n").str.slice(0, (fit - 2).clip(lower_bound=0)), pl.lit("..")]))
            .otherwise(pl.col("n"))
        )
    ).to_series()


def _frames_svg(
    lay: Layout, xt: np.ndarray, wt: np.ndarray, total: float, fills: pl.Series, titles: pl.Series,
    *, width: int, height: int, icicle: bool,
) -> str:
    """The ``<g>`` elements of every frame (x/w in ticks of ``total``). ``titles`` are plain
    text; every text written here is XML-escaped."""
    scale = (width - 2 * XPAD) / total if total > 0 else 0.0
    xpx = XPAD + xt * scale
    wpx = wt * scale
    depth = lay.depth
    y = HEAD + depth * FRAME_H if icicle else height - FOOT - (depth + 1) * FRAME_H
    raw = _node_names(lay)
    df = pl.DataFrame(
        {
            "dx": pl.Series(np.round(xt, 3)) if xt.dtype.kind == "f" else pl.Series(xt),
            "dw": pl.Series(np.round(wt, 3)) if wt.dtype.kind == "f" else pl.Series(wt),
            "d": depth,
            "x": np.round(xpx, 2), "w": np.round(np.maximum(wpx - 0.5, 0.1), 2),
            "tx": np.round(xpx + 3, 2), "y": y.astype(np.int64), "ty": (y + 11.5),
            "fill": fills, "title": titles, "label": _labels(raw, pl.Series(wpx)),
        }
    )
    text = df.select(
        pl.concat_str(
            [
                pl.lit('<g data-x="'), pl.col("dx").cast(pl.Utf8), pl.lit('" data-w="'), pl.col("dw").cast(pl.Utf8),
                pl.lit('" data-d="'), pl.col("d").cast(pl.Utf8), pl.lit('"><title>'), _xml_expr(pl.col("title")),
                pl.lit('</title><rect x="'), pl.col("x").cast(pl.Utf8), pl.lit('" y="'), pl.col("y").cast(pl.Utf8),
                pl.lit('" width="'), pl.col("w").cast(pl.Utf8), pl.lit(f'" height="{FRAME_H - 1}" fill="'),
                pl.col("fill"), pl.lit('"/><text x="'), pl.col("tx").cast(pl.Utf8), pl.lit('" y="'),
                pl.col("ty").cast(pl.Utf8), pl.lit('">'), pl.col("label"), pl.lit("</text></g>\n"),
            ]
        )
    ).to_series()
    return "".join(text.to_list())


def _node_names(lay: Layout) -> pl.Series:
    """The (unescaped) name of every layout row."""
    return pl.Series("n", lay.names.tolist(), dtype=pl.Utf8).gather(lay.name)


def _document(
    body: str, *, width: int, height: int, title: str, subtitle: str, total: float, unit: str,
    legend: str = "",
) -> str:
    css = (
        "text{font-family:Verdana,sans-serif;font-size:12px;fill:#000}"
        "#title{font-size:17px;font-weight:bold}#subtitle{fill:#444}"
        "#frames text{pointer-events:none;font-size:12px}#frames g{cursor:pointer}"
        "#frames g:hover rect{stroke:#000;stroke-width:0.5}.parent{opacity:0.5}"
        ".hide{display:none}#unzoom,#search{cursor:pointer;fill:#1a4fa0}#matched{fill:#800080}"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" '
        f'data-total="{total}" data-unit="{_xml_text(unit)}" data-xpad="{XPAD}" data-fontw="{FONT_W:.3f}">\n'
        f"<style>{css}</style>\n"
        '<defs><linearGradient id="bg" y1="0" y2="1" x1="0" x2="0">'
        '<stop stop-color="#eeeeee" offset="5%"/><stop stop-color="#eeeeb0" offset="95%"/></linearGradient></defs>\n'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="url(#bg)"/>\n'
        f'<text id="title" x="{width / 2}" y="24" text-anchor="middle">{_xml_text(title)}</text>\n'
        f'<text id="subtitle" x="{width / 2}" y="44" text-anchor="middle">{_xml_text(subtitle)}</text>\n'
        f'<text id="unzoom" class="hide" x="{XPAD}" y="24">Reset Zoom</text>\n'
        f'<text id="search" x="{width - XPAD}" y="24" text-anchor="end">Search</text>\n'
        f"{legend}"
        f'<text id="details" x="{XPAD}" y="{height - 10}"> </text>\n'
        f'<text id="matched" class="hide" x="{width - XPAD}" y="{height - 10}" text-anchor="end"> </text>\n'
        f'<g id="frames">\n{body}</g>\n'
        f'<script type="text/ecmascript"><![CDATA[\n{_script()}\n]]></script>\n'
        "</svg>\n"
    )


def _height(lay: Layout) -> int:
    return HEAD + (lay.max_depth + 1) * FRAME_H + FOOT


def render_svg(
    profile: Profile,
    type_index: int,
    *,
    title: str = "Flame Graph",
    icicle: bool = False,
    width: int = 1200,
    min_width_px: float = 0.1,
) -> str:
    """Interactive SVG flame graph of value column ``type_index`` (see module docstring)."""
    st = profile.sample_types[type_index]
    # narrow nodes go before layout: a node below the threshold has no visible descendants
    tree = call_tree(profile, type_index, min_total=min_ticks_of(width, min_width_px))
    return render_tree_svg(tree, st, title=title, icicle=icicle, width=width, min_width_px=min_width_px)


def min_ticks_of(width: int, min_width_px: float) -> Callable[[int], float]:
    """The narrowest drawn node's total, in ticks, as a function of the root's total."""
    span = width - 2 * XPAD

    def min_ticks(total: int) -> float:
        return min_width_px * total / span if total > 0 else 0.0

    return min_ticks


def render_tree_svg(
    tree: CallTree,
    st: ValueType,
    *,
    title: str = "Flame Graph",
    icicle: bool = False,
    width: int = 1200,
    min_width_px: float = 0.1,
) -> str:
    """:func:`render_svg` of a single-column call tree whose values are ``st``."""
    total = int(tree.root_total[0])
    lay = layout(prune_narrow(tree, min_ticks_of(width, min_width_px)(total)))
    tot = lay.total[:, 0]
    pct = fixed(100.0 * tot / max(total, 1), 2)
    vals = format_values(tot, st.unit)
    titles = pl.DataFrame({"n": _node_names(lay), "v": vals, "p": pct}).select(
        pl.concat_str([pl.col("n"), pl.lit("\n"), pl.col("v"), pl.lit(" ("), pl.col("p"), pl.lit("%)")])
    ).to_series()
    fills = pl.Series(_name_colours(lay)[lay.name].astype(str))
    height = _height(lay)
    body = _frames_svg(lay, lay.x[:, 0], tot, total, fills, titles, width=width, height=height, icicle=icicle)
    subtitle = f"Total: {format_value(total, st.unit)} · {st.type} ({st.unit}) · {lay.size} frames"
    return _document(body, width=width, height=height, title=title, subtitle=subtitle, total=total, unit=st.unit)


def diff_colours(base_share: np.ndarray, cand_share: np.ndarray) -> np.ndarray:
    """Fill per frame: red where the candidate's share grew, blue where it shrank;
    intensity = relative change (saturating at ±100 %), grey when unchanged."""
    delta = cand_share - base_share
    denom = np.maximum(np.maximum(base_share, cand_share), 1e-300)
    rel = np.clip(np.abs(delta) / denom * 2.0, 0.0, 1.0)
    rel[np.abs(delta) < 1e-12] = 0.0
    grow = delta > 0
    lo = np.rint(225 - rel * 175).astype(np.int64)  # fading channel
    hi = np.rint(225 + rel * 30).astype(np.int64)   # dominant channel
    r = np.where(grow, hi, lo)
    b = np.where(grow, lo, hi)
    g = lo
    df = pl.DataFrame({"r": r, "g": g, "b": b})
    return df.select(
        pl.concat_str([pl.lit("rgb("), pl.col("r").cast(pl.Utf8), pl.lit(","), pl.col("g").cast(pl.Utf8),
                       pl.lit(","), pl.col("b").cast(pl.Utf8), pl.lit(")")])
    ).to_series().to_numpy()


def render_diff_svg(
    base: Profile,
    cand: Profile,
    type_index: int,
    *,
    title: str = "Differential Flame Graph",
    icicle: bool = False,
    width: int = 1200,
    min_width_px: float = 0.1,
) -> str:
    """Differential SVG flame graph: ``cand`` against ``base``, both normalised by their
    totals (see module docstring). ``type_index`` selects the column in both."""
    st = cand.sample_types[type_index]
    tree = combine(call_tree(base, type_index), call_tree(cand, type_index))
    btot, ctot = (max(int(v), 1) for v in tree.root_total)
    # normalised weights: shares of each side in units of 1e-12 of the total (integers)
    span = width - 2 * XPAD
    unit_share = 1e12
    w = tree.total[:, 0] / btot + tree.total[:, 1] / ctot
    keep = w / 2 * span >= min_width_px
    lay = layout(prune_narrow(tree, 0, keep=keep))
    bs = lay.total[:, 0] / btot
    cs = lay.total[:, 1] / ctot
    xt = (lay.x[:, 0] / btot + lay.x[:, 1] / ctot) / 2 * unit_share
    wt = (bs + cs) / 2 * unit_share
    delta_pp = 100 * (cs - bs)
    rel = np.where(bs > 0, 100 * (cs - bs) / np.maximum(bs, 1e-300), np.inf)
    rel_txt = pl.DataFrame({"r": rel}).select(
        pl.when(pl.col("r").is_infinite()).then(pl.lit("new"))
        .otherwise(pl.concat_str([pl.when(pl.col("r") >= 0).then(pl.lit("+")).otherwise(pl.lit("")),
                                  _fixed_expr(pl.col("r"), 1), pl.lit("%")]))
    ).to_series()
    dsign = pl.Series(np.where(delta_pp >= 0, "+", ""))
    titles = pl.DataFrame(
        {
            "n": _node_names(lay),
            "bv": format_values(lay.total[:, 0], st.unit), "bp": fixed(100 * bs, 2),
            "cv": format_values(lay.total[:, 1], st.unit), "cp": fixed(100 * cs, 2),
            "ds": dsign, "dp": fixed(delta_pp, 2), "rel": rel_txt,
        }
    ).select(
        pl.concat_str(
            [
                pl.col("n"), pl.lit("\nbase: "), pl.col("bv"), pl.lit(" ("), pl.col("bp"),
                pl.lit("%), candidate: "), pl.col("cv"), pl.lit(" ("), pl.col("cp"), pl.lit("%), delta: "),
                pl.col("ds"), pl.col("dp"), pl.lit(" pp ("), pl.col("rel"), pl.lit(")"),
            ]
        )
    ).to_series()
    fills = pl.Series(diff_colours(bs, cs).astype(str))
    height = _height(lay)
    body = _frames_svg(lay, xt, wt, unit_share, fills, titles, width=width, height=height, icicle=icicle)
    subtitle = (
        f"base: {format_value(int(tree.root_total[0]), st.unit)} · candidate: "
        f"{format_value(int(tree.root_total[1]), st.unit)} · {st.type} ({st.unit}) · normalised by totals"
    )
    legend = (
        f'<text x="{XPAD}" y="44" fill="#b22">red = grew</text>'
        f'<text x="{XPAD + 90}" y="44" fill="#22b">blue = shrank</text>\n'
    )
    # the script reads values in "ticks" of unit_share; its unit is a share, shown in %
    return _document(
        body, width=width, height=height, title=title, subtitle=subtitle, total=unit_share, unit="share",
        legend=legend,
    )


def _fixed_expr(expr: pl.Expr, digits: int) -> pl.Expr:
    from fleetprof.render.units import _fixed

    return _fixed(expr, digits)
