"""The self-contained offline HTML report of one analysis window.

One HTML file, no external resource: charts are inline SVG drawn here (horizontal bar
charts), flame graphs come from :func:`fleetprof.render.svg.render_svg` embedded as
``<iframe srcdoc>`` documents (each keeps its own zoom/search script), tables are plain HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from fleetprof.model import Profile

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}
iframe{width:100%;height:520px;border:1px solid #ddd}.card{display:inline-block;margin:0 16px 8px 0;padding:8px 12px;background:#f7f7f7;border-radius:6px}
code{font-size:12px;word-break:break-all}
"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * float(x):.1f}%"


def bar_chart(labels: Sequence[str], values: Sequence[float], *, fmt: str = "{:,.2f}", width: int = 760, title: str = "") -> str:
    """Horizontal bar chart as an inline ``<svg>`` (one bar per label, largest first as given)."""
    n = len(labels)
    if n == 0:
        return '<p class="muted">no data</p>'
    bar_h, gap, left, right = 18, 4, 320, 110
    h = n * (bar_h + gap) + 24
    vmax = max(max(values), 1e-12)
    rows = []
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        y = 20 + i * (bar_h + gap)
        w = max((width - left - right) * float(v) / vmax, 0.5)
        short = lab if len(lab) <= 48 else lab[:22] + "…" + lab[-24:]
        rows.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">{esc(short)}<title>{esc(lab)}</title></text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#e8743b"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="12">{esc(fmt.format(v))}</text>'
        )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" aria-label="{esc(title)}">'
            f'<text x="0" y="12" font-size="12" font-weight="bold">{esc(title)}</text>{"".join(rows)}</svg>')


def table(df: pl.DataFrame, columns: Sequence[str] | None = None, *, limit: int = 50, pct_cols: Sequence[str] = ()) -> str:
    """An HTML table of the first ``limit`` rows (floats formatted; share columns as %)."""
    if df.height == 0:
        return '<p class="muted">none</p>'
    cols = list(columns or df.columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for row in df.select(cols).head(limit).iter_rows():
        cells = []
        for c, v in zip(cols, row, strict=True):
            if c in pct_cols and isinstance(v, float):
                cells.append(f'<td class="n">{pct(v)}</td>')
            elif isinstance(v, float):
                cells.append(f'<td class="n">{v:,.3g}</td>' if abs(v) < 1000 else f'<td class="n">{v:,.0f}</td>')
            elif isinstance(v, int) and not isinstance(v, bool):
                cells.append(f'<td class="n">{v:,}</td>')
            elif c in ("path", "example_stack"):
                cells.append(f"<td><code>{esc(v)}</code></td>")
            else:
                cells.append(f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="muted">{df.height - limit} more rows in the Parquet file</p>' if df.height > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def flame_graph(profile: Profile, title: str) -> str:
    """A flame graph as an isolated, self-contained ``<iframe srcdoc>`` (sandboxed: its
    script runs in an opaque origin)."""
    try:
        from fleetprof.render.svg import render_svg
    except ImportError:  # renderer not installed: the hot paths table stands in
        return '<p class="muted">flame graph renderer unavailable</p>'
    svg = render_svg(profile, 0, title=title, width=1200)
    start = svg.find("<svg")
    doc = "<!doctype html><html><body style='margin:0'>" + (svg[start:] if start >= 0 else svg) + "</body></html>"
    return f'<iframe sandbox="allow-scripts allow-modals" title="{esc(title)}" srcdoc="{esc(doc)}"></iframe>'


def render_report(summary: Mapping[str, Any], tables: Mapping[str, pl.DataFrame], flames: Mapping[str, Profile]) -> str:
    """The whole report (see module docstring)."""
    s = summary
    cost = tables.get("cost_services", pl.DataFrame())
    top = tables.get("top_functions", pl.DataFrame())
    cpu = s.get("cpu_profile_type")
    fleet_top = top.filter((pl.col("scope") == "*") & (pl.col("profile_type") == cpu)).head(20) if top.height and cpu else pl.DataFrame()
    hot = tables.get("hotspots", pl.DataFrame())
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>fleetprof analysis {esc(s['tenant'])} {esc(s['window'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Fleet analysis — tenant <b>{esc(s['tenant'])}</b>, window <b>{esc(s['window'])}</b></h1>",
        f"<div class='card'>services: <b>{len(s.get('services', []))}</b></div>",
        f"<div class='card'>estimated cost: <b>${float(s.get('cost_usd_month', 0)):,.2f}/month</b> "
        f"<span class='muted'>at ${float(s.get('vcpu_hour_usd', 0)):.4f}/vCPU-hour</span></div>",
        f"<div class='card'>regressions: <b>{len(s.get('regressions', []))}</b></div>",
        f"<div class='card'>leak suspects: <b>{len(s.get('leak_suspects', []))}</b></div>",
        f"<div class='card'>recommendations: <b>{len(s.get('recommendations', []))}</b></div>",
        "<h2>Cost per service</h2>",
        bar_chart(cost["service"].to_list(), cost["usd_month"].to_list(), fmt="${:,.2f}/mo", title="$/month") if cost.height else "<p class='muted'>no CPU profiles</p>",
        "<h2>Fleet-wide top functions (self CPU)</h2>",
        bar_chart(fleet_top["function"].to_list(), [100 * x for x in fleet_top["normalized_share"].to_list()], fmt="{:.1f}%",
                  title="mean share per service") if fleet_top.height else "",
        table(fleet_top, ["function", "self_share", "normalized_share", "total_share", "services"], pct_cols=("self_share", "normalized_share", "total_share")),
        "<h2>Shared hotspots</h2>",
        table(hot.filter(pl.col("hot")) if hot.height else hot, ["category", "service", "share", "services_hot", "shared"], pct_cols=("share",)),
        "<h2>Recommendations</h2>",
        table(tables.get("recommendations", pl.DataFrame()), ["service", "rule_id", "share", "threshold", "top_functions", "example_stack", "advice"],
              pct_cols=("share", "threshold")),
        "<h2>Regressions</h2>",
        table(tables.get("regressions", pl.DataFrame()), ["kind", "service", "function", "base", "candidate", "base_share", "cand_share", "delta_share"],
              pct_cols=("base_share", "cand_share", "delta_share")),
        "<h2>Memory: leak suspects</h2>",
        table(tables.get("leaks", pl.DataFrame()), ["service", "function", "start_value", "end_value", "growth", "r2", "end_share"], pct_cols=("end_share",)),
        "<h2>Lock contention</h2>",
        table(tables.get("contention", pl.DataFrame()), ["service", "rank", "function", "value", "share", "hotspot"], pct_cols=("share",)),
        "<h2>Hot paths</h2>",
        table(tables.get("hot_paths", pl.DataFrame()), ["service", "rank", "path", "share"], pct_cols=("share",)),
        "<h2>Cost per function</h2>",
        table(tables.get("cost_functions", pl.DataFrame()), ["service", "function", "avg_vcpus", "usd_month", "share"], limit=30, pct_cols=("share",)),
        "<h2>Flame graphs (CPU)</h2>",
    ]
    for service, prof in flames.items():
        parts.append(f"<h3>{esc(service)}</h3>{flame_graph(prof, f'{service} — {cpu}')}")
    parts.append("</body></html>")
    return "".join(parts)
