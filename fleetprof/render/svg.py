"""Self-contained interactive SVG flame graphs (single profile and diff).

The output is one SVG document with its own JavaScript (``static/flame_svg.js``, in a
CDATA script): click a frame to zoom (ancestors stay as a faded full-width stack),
"Reset Zoom" / Escape to unzoom, "Search" / Ctrl-F for a regular expression (matches are
highlighted, the matched share of the total — nested matches counted once — is shown),
a ``<title>`` tooltip per frame (``name``, value with units and %), and a details line on
hover. ``icicle=True`` draws the root at the top.

Frames narrower than ``min_width_px`` are omitted; their time stays inside the parent
(a gap), so every percentage is exact. Colours: a warm palette keyed by a stable hash
(CRC-32) of the frame's package/module prefix. The SVG text is built from numpy columns
with Python string joins: texts that depend on a value (numbers, percentages, escaped
names, colours) are formatted once per distinct value and gathered per frame. Only numpy
is needed to draw a :class:`~fleetprof.render.layout.CallTree` (:func:`render_tree_svg`);
the profile-model renderers load the model when called.

Diff (:func:`render_diff_svg`): base and candidate are aligned by name path; widths are
the mean of both normalised shares; red = the candidate's share grew, blue = shrank,
intensity by the relative change; tooltips show both values and the delta.
"""

from __future__ import annotations

import html
import re
import zlib
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fleetprof.render.layout import (
    OTHER_NAME,
    ROOT_NAME,
    CallTree,
    Layout,
    layout,
    prune_narrow,
)
from fleetprof.render.units import UNITS_JS, format_value, scale_table

if TYPE_CHECKING:
    from fleetprof.model.profile import Profile


class ValueKind(Protocol):
    """What the values count and their unit (a :class:`~fleetprof.model.ValueType`)."""

    type: str
    unit: str


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


def _xml_texts(values: Sequence[str]) -> np.ndarray:
    """:func:`_xml_text` of every string (object array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = [_xml_text(v) for v in values]
    return out


def _by_value(values: np.ndarray, text: Callable[[np.ndarray], list[str]]) -> np.ndarray:
    """``text(values)`` (one string per value) computed once per distinct value."""
    if len(values) == 0:
        return np.empty(0, dtype=object)
    uniq, inv = np.unique(values, return_inverse=True)
    out = np.empty(len(uniq), dtype=object)
    out[:] = text(uniq)
    return out[inv.reshape(-1)]


def _fixed_texts(values: np.ndarray, digits: int) -> list[str]:
    """``values`` with exactly ``digits`` decimals: the value times ``10**digits`` rounded
    half to even, then written as an integer with the decimal point inserted."""
    scale = 10**digits
    n = np.rint(np.asarray(values, dtype=np.float64) * scale).astype(np.int64).tolist()
    return [f"{'-' if k < 0 else ''}{abs(k) // scale}.{abs(k) % scale:0{digits}d}" for k in n]


def _value_texts(values: np.ndarray, unit: str) -> list[str]:
    """:func:`~fleetprof.render.units.format_value` of every value (same text)."""
    v = np.asarray(values, dtype=np.float64)
    table = scale_table(unit)
    if table is None:
        label = "" if unit in ("", "count") else f" {unit}"
        return [f"{k:,}{label}" for k in np.round(v).astype(np.int64).tolist()]
    av = np.abs(v)
    idx = np.full(len(v), len(table) - 1, dtype=np.int64)
    for i in range(len(table) - 2, -1, -1):  # the largest divisor not above the value
        idx[av >= table[i][0]] = i
    div = np.array([d for d, _ in table], dtype=np.float64)[idx]
    q = v / div
    aq = np.abs(q)
    whole = (aq >= 100) | (idx == len(table) - 1)
    one = ~whole & (aq >= 10)
    num = np.empty(len(v), dtype=object)
    num[whole] = [str(k) for k in np.rint(q[whole]).astype(np.int64).tolist()]
    num[one] = _fixed_texts(q[one], 1)
    two = ~(whole | one)
    num[two] = _fixed_texts(q[two], 2)
    return [f"{n} {table[i][1]}" for n, i in zip(num.tolist(), idx.tolist(), strict=True)]


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


def _drawn_codes(lay: Layout) -> np.ndarray:
    """The name codes drawn, ascending."""
    return np.flatnonzero(np.bincount(lay.name, minlength=len(lay.names)))


def _name_colours(lay: Layout) -> np.ndarray:
    """Fill of every name code (one CRC per unique name)."""
    out = np.empty(len(lay.names), dtype=object)
    names = lay.names
    for i in _drawn_codes(lay).tolist():  # only the names drawn
        n = str(names[i])
        out[i] = "rgb(200,200,200)" if n in (ROOT_NAME, OTHER_NAME) else warm_colour(package_of(n), n)
    return out


def _labels(lay: Layout, width_px: np.ndarray, escaped: np.ndarray) -> np.ndarray:
    """XML-escaped text of every frame that fits ``width_px`` (flamegraph.pl's rule:
    ``..`` when truncated; nothing below 3 characters). ``escaped`` holds the escaped
    name of every name code that is drawn."""
    fit = np.floor((width_px - 6) / FONT_W).astype(np.int64)
    names = lay.names
    codes = _drawn_codes(lay)
    length = np.zeros(len(names), dtype=np.int64)
    length[codes] = [len(str(names[c])) for c in codes.tolist()]
    out = np.full(lay.size, "", dtype=object)
    shown = fit >= 3
    whole = shown & (length[lay.name] <= fit)
    out[whole] = escaped[lay.name[whole]]
    cut = np.flatnonzero(shown & ~whole)
    out[cut] = [
        _xml_text(str(names[c])[: max(f - 2, 0)] + "..") for c, f in zip(lay.name[cut].tolist(), fit[cut].tolist(), strict=True)
    ]
    return out


def _escaped_names(lay: Layout) -> np.ndarray:
    """The XML-escaped name of every drawn name code (others stay ``None``)."""
    out = np.empty(len(lay.names), dtype=object)
    codes = _drawn_codes(lay)
    out[codes] = _xml_texts([str(n) for n in lay.names[codes].tolist()])
    return out


def _number_texts(values: np.ndarray) -> np.ndarray:
    """``str`` of every number (ints as integers, floats as Python writes them; floats,
    slower to write, once per distinct value)."""
    if values.dtype.kind in "iu":
        out = np.empty(len(values), dtype=object)
        out[:] = list(map(str, values.tolist()))
        return out
    return _by_value(values, lambda u: [str(v) for v in u.tolist()])


def _frames_svg(
    lay: Layout, xt: np.ndarray, wt: np.ndarray, total: float, fills: np.ndarray, details: np.ndarray,
    *, width: int, height: int, icicle: bool,
) -> str:
    """The ``<g>`` elements of every frame (x/w in ticks of ``total``). Each title is the
    frame's name, a newline and its ``details`` (already XML-escaped); ``fills`` are
    colours. Every other text written here is escaped here."""
    scale = (width - 2 * XPAD) / total if total > 0 else 0.0
    xpx = XPAD + xt * scale
    wpx = wt * scale
    depth = lay.depth
    levels = np.arange(lay.max_depth + 1, dtype=np.int64)
    y = HEAD + levels * FRAME_H if icicle else height - FOOT - (levels + 1) * FRAME_H
    d_text = np.array([str(v) for v in levels.tolist()], dtype=object)[depth]
    y_text = np.array([f'" y="{v}" width="' for v in y.tolist()], dtype=object)[depth]
    ty_text = np.array([f'" y="{v + 11.5}">' for v in y.tolist()], dtype=object)[depth]
    escaped = _escaped_names(lay)
    cols = (
        _number_texts(np.round(xt, 3) if xt.dtype.kind == "f" else xt),
        _number_texts(np.round(wt, 3) if wt.dtype.kind == "f" else wt),
        d_text,
        escaped[lay.name],
        details,
        _number_texts(np.round(xpx, 2)),
        y_text,
        _number_texts(np.round(np.maximum(wpx - 0.5, 0.1), 2)),
        fills,
        _number_texts(np.round(xpx + 3, 2)),
        ty_text,
        _labels(lay, wpx, escaped),
    )
    dx, dw, d, n, dt, x, yt, w, f, tx, tyt, lb = (c.tolist() for c in cols)
    return _rows(
        '<g data-x="', dx, '" data-w="', dw, '" data-d="', d, '"><title>', n, "\n", dt, '</title><rect x="', x, yt, w,
        f'" height="{FRAME_H - 1}" fill="', f, '"/><text x="', tx, tyt, lb, "</text></g>\n",
        count=lay.size,
    )


def _rows(*pieces: str | list[str], count: int) -> str:
    """``count`` rows, row ``i`` being the concatenation of the pieces (a string, or the
    ``i``-th string of a list), joined at once."""
    out = [""] * (len(pieces) * count)
    for j, piece in enumerate(pieces):
        out[j :: len(pieces)] = [piece] * count if isinstance(piece, str) else piece
    return "".join(out)


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
    from fleetprof.render.layout import call_tree

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
    st: ValueKind,
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
    unit = st.unit

    def details(values: np.ndarray) -> list[str]:
        pct = _fixed_texts(100.0 * values / max(total, 1), 2)
        vals = _value_texts(values, unit)
        return [_xml_text(f"{v} ({p}%)") for v, p in zip(vals, pct, strict=True)]

    fills = _name_colours(lay)[lay.name]
    height = _height(lay)
    body = _frames_svg(lay, lay.x[:, 0], tot, total, fills, _by_value(tot, details), width=width, height=height, icicle=icicle)
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
    out = np.empty(len(r), dtype=object)
    out[:] = [f"rgb({a},{c},{e})" for a, c, e in zip(r.tolist(), lo.tolist(), b.tolist(), strict=True)]
    return out


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
    from fleetprof.render.layout import call_tree, combine

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
    finite = np.isfinite(rel)
    rel_txt = np.full(len(rel), "new", dtype=object)
    rel_txt[finite] = [("+" if r >= 0 else "") + t + "%" for r, t in zip(rel[finite].tolist(), _fixed_texts(rel[finite], 1), strict=True)]
    cols = (
        _value_texts(lay.total[:, 0], st.unit), _fixed_texts(100 * bs, 2),
        _value_texts(lay.total[:, 1], st.unit), _fixed_texts(100 * cs, 2),
        np.where(delta_pp >= 0, "+", "").tolist(), _fixed_texts(delta_pp, 2), rel_txt.tolist(),
    )
    details = _xml_texts([
        f"base: {bv} ({bp}%), candidate: {cv} ({cp}%), delta: {ds}{dp} pp ({rl})"
        for bv, bp, cv, cp, ds, dp, rl in zip(*cols, strict=True)
    ])
    fills = diff_colours(bs, cs)
    height = _height(lay)
    body = _frames_svg(lay, xt, wt, unit_share, fills, details, width=width, height=height, icicle=icicle)
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
