"""Single-file offline HTML flame graph (canvas, no external URLs).

The page embeds the profile as flamebearer JSON (:func:`to_flamebearer`, pruned with
Pyroscope's ``max_nodes`` rule so the file stays small while totals stay exact) plus a
``fleetprof`` block with the real unit, and its own JavaScript (``static/flame_html.js``):
click to zoom, Reset / Escape, a search box (Ctrl-F) with the matched share, tooltips,
title and total with units. Roots are drawn at the bottom, as :func:`fleetprof.render.svg.render_svg`
draws them by default; ``icicle=True`` draws them at the top, as ``render_svg(icicle=True)``.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources

from fleetprof.model.profile import Profile
from fleetprof.render.flamebearer import to_flamebearer
from fleetprof.render.units import UNITS_JS, format_value

_CSS = """
body{font-family:Verdana,sans-serif;margin:12px;background:#fafafa;color:#222}
h1{font-size:18px;margin:0 0 4px}#fg-sub{color:#555;font-size:13px;margin-bottom:8px}
#fg-bar{display:flex;gap:10px;align-items:center;margin-bottom:6px;font-size:13px}
#fg-search{width:260px;padding:3px}#fg-matched{color:#800080}#fg-zoomed{color:#1a4fa0}
#fg-canvas{width:100%;display:block;cursor:pointer}
#fg-tip{position:absolute;display:none;white-space:pre;background:#fffff0;border:1px solid #999;
padding:4px 6px;font-size:12px;pointer-events:none;max-width:600px;overflow:hidden}
"""


@cache
def _script() -> str:
    return UNITS_JS + resources.files("fleetprof.render").joinpath("static/flame_html.js").read_text()


def _json_for_script(obj: object) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``
    (so no ``</script>``, ``<!--`` or entity), non-ASCII as ``\\u`` escapes."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(
    profile: Profile, type_index: int, *, title: str = "Flame Graph", max_nodes: int | None = 20000, icicle: bool = False
) -> str:
    """Offline interactive HTML flame graph of value column ``type_index``."""
    st = profile.sample_types[type_index]
    fb = to_flamebearer(profile, type_index, max_nodes=max_nodes, name=title)
    fb["fleetprof"] = {"unit": st.unit, "sampleType": st.type, "icicle": bool(icicle)}
    total = fb["flamebearer"]["numTicks"]
    sub = f"Total: {format_value(total, st.unit)} · {st.type} ({st.unit})"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1 id=\"fg-title\">{html.escape(title)}</h1><div id=\"fg-sub\">{html.escape(sub)}</div>\n"
        "<div id=\"fg-bar\"><input id=\"fg-search\" type=\"search\" placeholder=\"Search (regexp, Ctrl-F)\">"
        "<button id=\"fg-reset\" disabled>Reset zoom</button><span id=\"fg-zoomed\"></span>"
        "<span id=\"fg-matched\"></span></div>\n"
        "<canvas id=\"fg-canvas\"></canvas><div id=\"fg-tip\"></div>\n"
        f"<script type=\"application/json\" id=\"fg-data\">{_json_for_script(fb)}</script>\n"
        f"<script>{_script()}</script>\n</body></html>\n"
    )
