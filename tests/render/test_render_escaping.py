"""Hostile strings through every renderer: each must come out as text, never as markup.

Strings come from every place a renderer reads one: frame names, file names, sample type
and unit, titles; for the analysis report also service names, functions and the tenant.
The SVG documents are parsed as XML (well-formed, only the renderer's own elements, one
script: the renderer's) and the HTML ones with the standard HTML parser (only the
renderer's elements, scripts and attributes); the hostile text must then be found intact
in the parsed text, i.e. escaped rather than dropped. Execution in a browser is checked
over a live server in ``tests/server/test_server_hostile.py``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import polars as pl
import pytest
from render_util import profile_of

from fleetprof.model import ValueType
from fleetprof.render.html import render_html
from fleetprof.render.svg import render_diff_svg, render_svg
from workers.report_html import render_report

HOSTILE = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "']]><script>document.title='pwned'</script>",
    "</title><script>alert(1)</script>",
    "</script><script>alert(1)</script>",
    "javascript:alert(1)",
    "a & b &amp; &lt;",
    "line\u2028sep\u2029para",
    "nul\x00byte",
    "<!-- <svg onload=alert(1)>",
]
XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
SVG_TAGS = {"svg", "style", "defs", "linearGradient", "stop", "rect", "text", "g", "title", "script"}


def _as_xml_text(s: str) -> str:
    """What survives of ``s`` in XML text: characters XML forbids become ``?``."""
    return XML_FORBIDDEN.sub("?", s)


def _hostile_profile(unit: str = "nanoseconds", sample_type: str = "cpu"):
    stacks = [(["main", h], 10 + i) for i, h in enumerate(HOSTILE)] + [(["main", *HOSTILE[:3]], 7)]
    return profile_of(stacks, ValueType(sample_type, unit), files={h: h for h in HOSTILE})


def _svg_checked(doc: str, expected_texts: list[str]) -> str:
    """Parse ``doc``; assert only the renderer's elements and one script, no event handler
    or script URL attributes; return all its text (titles, labels, headings)."""
    root = ET.fromstring(doc.encode())
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert tags <= SVG_TAGS, tags - SVG_TAGS
    scripts = [el for el in root.iter() if el.tag.endswith("script")]
    assert len(scripts) == 1 and "fmtValue" in (scripts[0].text or "")
    for el in root.iter():
        for k, v in el.attrib.items():
            assert not k.lower().startswith("on"), (k, v)
            assert "javascript:" not in v.lower() or k == "data-unit", (k, v)
    text = "\n".join(el.text or "" for el in root.iter() if not el.tag.endswith(("script", "style")))
    for s in expected_texts:
        assert _as_xml_text(s) in text, s
    return text


@pytest.mark.parametrize("hostile", HOSTILE)
def test_svg_escapes_names_units_types_titles(hostile: str) -> None:
    prof = _hostile_profile(unit=hostile, sample_type=hostile)
    doc = render_svg(prof, 0, title=hostile)
    text = _svg_checked(doc, [hostile, *HOSTILE])
    # the unit reaches every frame's tooltip, as text
    assert re.search(rf"\n\d+ {re.escape(_as_xml_text(hostile))} \(\d+\.\d\d%\)", text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_diff_svg_escapes_names_units_titles(hostile: str) -> None:
    base = _hostile_profile(unit=hostile)
    cand = profile_of([(["main", hostile], 5), (["main", "new " + hostile], 9)], ValueType("cpu", hostile))
    doc = render_diff_svg(base, cand, 0, title=hostile)
    _svg_checked(doc, [hostile, "new " + hostile, *HOSTILE])


class _Html(HTMLParser):
    """Tags, attributes, script bodies and visible text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "script":
            self.scripts.append(data)
        elif not self._in or self._in[-1] != "style":
            self.text.append(data)


def _html_checked(doc: str, allowed_tags: set[str], n_scripts: int) -> _Html:
    p = _Html()
    p.feed(doc)
    p.close()
    tags = {t for t, _ in p.tags}
    assert tags <= allowed_tags, tags - allowed_tags
    assert sum(t == "script" for t, _ in p.tags) == n_scripts
    for tag, attrs in p.tags:
        for k, v in attrs:
            assert not k.startswith("on"), (tag, k, v)
            assert not (v or "").strip().lower().startswith("javascript:"), (tag, k, v)
    return p


HTML_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "div", "input", "button", "span", "canvas", "script"}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_html_escapes_names_files_units_titles(hostile: str) -> None:
    prof = _hostile_profile(unit=hostile, sample_type=hostile)
    doc = render_html(prof, 0, title=hostile)
    p = _html_checked(doc, HTML_TAGS, n_scripts=2)
    assert hostile in "".join(p.text)  # title and subtitle, as text
    data = json.loads(p.scripts[0])
    assert set(HOSTILE) <= set(data["flamebearer"]["names"])
    assert data["fleetprof"]["unit"] == hostile and data["metadata"]["name"] == hostile


def test_report_html_escapes_services_functions_tenant() -> None:
    h = HOSTILE
    summary = {"tenant": h[0], "window": h[3], "services": h, "cpu_profile_type": h[1], "regressions": [],
               "leak_suspects": [], "recommendations": []}
    cost = pl.DataFrame({"service": h, "usd_month": [1.0] * len(h)})
    top = pl.DataFrame({"scope": ["*"] * len(h), "profile_type": [h[1]] * len(h), "function": h,
                        "self_share": [0.1] * len(h), "normalized_share": [0.1] * len(h),
                        "total_share": [0.2] * len(h), "services": [1] * len(h)})
    flames = {h[0]: _hostile_profile(), h[2]: _hostile_profile()}
    doc = render_report(summary, {"cost_services": cost, "top_functions": top}, flames)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "div", "b", "span", "p", "svg",
               "text", "rect", "table", "tr", "th", "td", "code", "iframe"}
    p = _html_checked(doc, allowed, n_scripts=0)
    text = "".join(p.text)
    for s in h:
        assert s in text or s[:22] in text, s
    frames = [dict(a) for t, a in p.tags if t == "iframe"]
    assert len(frames) == 2 and all("allow-scripts" in (f.get("sandbox") or "") for f in frames)
    for f in frames:  # each srcdoc is itself a clean document around the renderer's SVG
        inner = f["srcdoc"] or ""
        _svg_checked(inner[inner.index("<svg"):inner.rindex("</svg>") + 6], HOSTILE)
