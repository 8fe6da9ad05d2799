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
code{font-size:12px;word-break:break-all}.note{background:#fff4d6;border:1px solid #e8c060;padding:6px 10px;border-radius:4px}
th[title]{cursor:help;text-decoration:underline dotted}
"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * float(x):.1f}%"


def bar_chart(labels: Sequence[str], values: Sequence[float], *, fmt: str = "{:,.2f}", width: int = 760, title: str = "") -> str:
    """Horizontal bar chart as an inline ``<svg>``: one bar per label, sorted by value, largest first."""
    n = len(labels)
    if n == 0:
        return '<p class="muted">no data</p>'
    pairs = sorted(zip(labels, values, strict=True), key=lambda lv: -float(lv[1]))
    labels, values = [lab for lab, _ in pairs], [v for _, v in pairs]
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


COLUMNS: dict[str, tuple[str, str]] = {
    "self_share": ("self CPU %", "CPU in the function itself (stacks whose leaf it is), % of its scope's CPU"),
    "total_share": ("total CPU %", "CPU in the function and everything it calls, % of its scope's CPU"),
    "normalized_share": ("mean self CPU % per service", "the function's self CPU % averaged over services (a small service weighs as much as a big one)"),
    "share": ("share %", "fraction of the service's value in this row"),
    "end_share": ("in-use share at end %", "fraction of the service's in-use memory held at the window's end"),
    "base_share": ("base self %", "self share before"), "cand_share": ("now self %", "self share after"),
    "delta_share": ("change (points)", "percentage points gained"),
    "usd_month": ("$/month", "cost at the measured CPU rate sustained for a month"),
    "avg_vcpus": ("vCPU", "average vCPUs busy in this row (measured CPU time / observed time)"),
    "services": ("services", "services where the function appears"),
    "services_hot": ("services hot", "services where the category is above the hotspot threshold"),
    "rule_id": ("finding", "the rule that fired"), "top_function": ("heaviest function", "the matching function with most CPU"),
    "example_stack": ("example stack", "the heaviest matching stack, root first"),
    "flamegraph_url": ("flame graph", "open the explorer on this service, type and window"),
    "threshold": ("fires at %", "the rule's firing threshold"), "growth": ("growth", "fitted end/start - 1"),
    "r2": ("fit r²", "how well a straight line fits the growth"), "robust_z": ("robust z", "distance from the baseline median in MADs"),
    "baseline_median": ("baseline %", "median share over the preceding buckets"), "bucket_start_ms": ("when (UTC)", "start of the anomalous bucket"),
    "value": ("value", "summed profile value (ns for CPU and delays, bytes for memory)"),
    "cpu_seconds": ("CPU seconds", "CPU time measured in the window"),
    "observed_seconds": ("profiled seconds", "time the profiles cover (the cost's denominator)"),
    "coverage": ("window covered %", "profiled time / window length"), "complete": ("complete window", "profiles cover the window"),
}
"""Column -> (header a reader understands, explanation shown on hover)."""

PCT_COLS = frozenset({"self_share", "total_share", "normalized_share", "share", "end_share", "base_share", "cand_share",
                      "delta_share", "threshold", "baseline_median", "coverage"})


def _href(url: str) -> str | None:
    """``url`` when it is a web or relative link (never ``javascript:`` and the like)."""
    u = url.strip()
    if not u or (":" in u.split("/", 1)[0] and not u.lower().startswith(("http://", "https://"))):
        return None
    return u


def cell(col: str, v: object) -> str:
    """One ``<td>``: shares as %, $/month and vCPU readable, links clickable, text escaped."""
    if v is None:
        return "<td></td>"
    if col in PCT_COLS and isinstance(v, float):
        return f'<td class="n">{pct(v)}</td>'
    if col == "usd_month" and isinstance(v, float):
        return f'<td class="n">${v:,.2f}</td>'
    if col == "avg_vcpus" and isinstance(v, float):
        return f'<td class="n">{v:,.2f}</td>'
    if col == "bucket_start_ms" and isinstance(v, int):
        import datetime as dt

        return f"<td>{dt.datetime.fromtimestamp(v / 1000, tz=dt.UTC):%Y-%m-%d %H:%M}</td>"
    if col.endswith("_url") and isinstance(v, str):
        href = _href(v)
        return f'<td><a href="{esc(href)}">open</a></td>' if href else "<td></td>"
    if isinstance(v, float):
        return f'<td class="n">{v:,.3g}</td>' if abs(v) < 1000 else f'<td class="n">{v:,.0f}</td>'
    if isinstance(v, int) and not isinstance(v, bool):
        return f'<td class="n">{v:,}</td>'
    if col in ("path", "example_stack"):
        return f"<td><code>{esc(v)}</code></td>"
    return f"<td>{esc(v)}</td>"


def table(df: pl.DataFrame, columns: Sequence[str] | None = None, *, limit: int = 50, pct_cols: Sequence[str] = ()) -> str:
    """An HTML table of the first ``limit`` rows, headers as readers name them (hover: what
    the column means), numbers formatted by :func:`cell`. ``pct_cols`` is accepted for
    compatibility; share columns are known by name (:data:`PCT_COLS`)."""
    del pct_cols
    if df.height == 0:
        return '<p class="muted">none</p>'
    cols = [c for c in (columns or df.columns) if c in df.columns]
    head = "".join(f'<th title="{esc(COLUMNS.get(c, (c, ""))[1])}">{esc(COLUMNS.get(c, (c, ""))[0])}</th>' for c in cols)
    body = ["<tr>" + "".join(cell(c, v) for c, v in zip(cols, row, strict=True)) + "</tr>" for row in df.select(cols).head(limit).iter_rows()]
    more = f'<p class="muted">{df.height - limit} more rows in the Parquet file</p>' if df.height > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _col(df: pl.DataFrame, name: str) -> bool:
    return df.height > 0 and name in df.columns


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
    """The whole report (see module docstring): cards, findings with their dollar impact and
    flame graph links, cost (with the incomplete-window note), anomalies, top functions and
    the other tables; every chart sorted by the figure it draws."""
    from fleetprof.render.titles import profile_kind, time_range_text

    s = summary
    empty = pl.DataFrame()
    cost = tables.get("cost_services", empty)
    top = tables.get("top_functions", empty)
    cpu = s.get("cpu_profile_type")
    fleet_top = top.filter((pl.col("scope") == "*") & (pl.col("profile_type") == cpu)) if top.height and cpu else empty
    hot = tables.get("hotspots", empty)
    recs = tables.get("recommendations", empty)
    anomalies = tables.get("anomalies", empty)
    vcpus = float(cost["avg_vcpus"].sum()) if _col(cost, "avg_vcpus") else 0.0
    cost_sorted = cost.sort("usd_month", descending=True) if _col(cost, "usd_month") else cost
    top_chart = fleet_top.sort("normalized_share", descending=True).head(20) if _col(fleet_top, "normalized_share") else fleet_top
    rec_sorted = recs.sort("usd_month", descending=True, nulls_last=True) if _col(recs, "usd_month") else recs
    span = time_range_text(int(s["start_ms"]), int(s["end_ms"])) if "start_ms" in s and "end_ms" in s else ""
    note = s.get("cost_note") or ""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>fleetprof analysis {esc(s['tenant'])} {esc(s['window'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Fleet analysis — tenant <b>{esc(s['tenant'])}</b>, window <b>{esc(s['window'])}</b></h1>",
        f"<p class='muted'>{esc(span)}{' · ' + esc(profile_kind(str(cpu))) + ' from ' + esc(cpu) if cpu else ''}</p>",
        f"<div class='card'>services: <b>{len(s.get('services', []))}</b></div>",
        f"<div class='card'>CPU: <b>{vcpus:,.2f} vCPU</b> on average</div>",
        f"<div class='card'>estimated cost: <b>${float(s.get('cost_usd_month', 0)):,.2f}/month</b> "
        f"<span class='muted'>at ${float(s.get('vcpu_hour_usd', 0)):.4f}/vCPU-hour</span></div>",
        f"<div class='card'>findings: <b>{len(s.get('recommendations', []))}</b></div>",
        f"<div class='card'>anomalies: <b>{len(s.get('anomalies', []))}</b></div>",
        f"<div class='card'>regressions: <b>{len(s.get('regressions', []))}</b></div>",
        f"<div class='card'>leak suspects: <b>{len(s.get('leak_suspects', []))}</b></div>",
        f"<p class='note'>{esc(note)}</p>" if note else "",
        "<h2>Findings and their cost</h2>",
        "<p class='muted'>Each finding: a rule that matched the service's profiles, the CPU it covers and what that CPU costs per month; "
        "the link opens the flame graph focused on the heaviest matching function.</p>",
        bar_chart([f"{sv} · {r}" for sv, r in rec_sorted.select("service", "rule_id").iter_rows()],
                  rec_sorted["usd_month"].fill_null(0.0).to_list(), fmt="${:,.2f}/mo", title="impact, $/month")
        if _col(rec_sorted, "usd_month") else "",
        table(rec_sorted, ["service", "rule_id", "usd_month", "avg_vcpus", "share", "top_function", "flamegraph_url", "advice", "example_stack"]),
        "<h2>Cost per service</h2>",
        bar_chart(cost_sorted["service"].to_list(), cost_sorted["usd_month"].to_list(), fmt="${:,.2f}/mo", title="$/month")
        if cost.height else "<p class='muted'>no CPU profiles</p>",
        table(cost_sorted, ["service", "avg_vcpus", "usd_month", "cpu_seconds", "observed_seconds", "coverage", "complete"]),
        "<h2>Anomalies over time</h2>",
        "<p class='muted'>A function whose share in one time bucket departs from its recent baseline (median ± robust z × MAD).</p>",
        table(anomalies.sort("robust_z", descending=True) if _col(anomalies, "robust_z") else anomalies,
              ["service", "function", "bucket_start_ms", "share", "baseline_median", "robust_z", "direction", "evidence", "flamegraph_url"]),
        "<h2>Fleet-wide top functions</h2>",
        bar_chart(top_chart["function"].to_list(), [100 * x for x in top_chart["normalized_share"].to_list()], fmt="{:.1f}%",
                  title="mean self CPU % per service") if top_chart.height else "",
        table(top_chart, ["function", "normalized_share", "self_share", "total_share", "services"]),
        "<h2>Shared hotspots</h2>",
        table(hot.filter(pl.col("hot")).sort("share", descending=True) if hot.height else hot, ["category", "service", "share", "services_hot", "shared"]),
        "<h2>Regressions</h2>",
        table(tables.get("regressions", empty), ["kind", "service", "function", "base", "candidate", "base_share", "cand_share", "delta_share"]),
        "<h2>Memory: leak suspects</h2>",
        table(tables.get("leaks", empty), ["service", "function", "start_value", "end_value", "growth", "r2", "end_share"]),
        "<h2>Lock contention</h2>",
        table(tables.get("contention", empty), ["service", "rank", "function", "value", "share", "hotspot"]),
        "<h2>Hot paths</h2>",
        table(tables.get("hot_paths", empty), ["service", "rank", "path", "share"]),
        "<h2>Cost per function</h2>",
        table(tables.get("cost_functions", empty), ["service", "function", "avg_vcpus", "usd_month", "share"], limit=30),
        "<h2>Flame graphs (CPU)</h2>",
    ]
    for service, prof in flames.items():
        title = f"{service} · {profile_kind(str(cpu))} · {span}" if span else f"{service} · {profile_kind(str(cpu))}"
        parts.append(f"<h3>{esc(service)}</h3>{flame_graph(prof, title)}")
    parts.append("</body></html>")
    return "".join(parts)
