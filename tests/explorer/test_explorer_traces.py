"""The explorer's trace views in Chromium against a real server fed by the real
OpenTelemetry SDK (OTLP/HTTP protobuf to /v1/traces) and, for span profiles, the real
pyroscope-io agent with pyroscope-otel's span processor (traced_program.py, whose agent's
application name differs from its spans' service.name): trace search, the flame graph of
the spans a search matches (route and view), the waterfall's tree and bar geometry, span
details, the span → flame graph jump, the flame-graph node → traces list → trace jump (and
"trace not stored" for a span the trace store lacks), and hostile strings shown as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from explorerutil import (
    CPU,
    PAYLOAD,
    REPO,
    ServerProc,
    build_ui,
    guarded_page,
    screenshot,
    server_list,
    start_server,
)

SHOTS = Path(os.environ.get("FLEETPROF_H4SHOTS", "/tmp/h4shots"))
MS = 1_000_000


@dataclass
class Traced:
    server: ServerProc
    trace_id: str  # the hand-built frontend → cart trace
    spans: dict[str, str]  # its span names → span ids
    base_ns: int
    program: dict[str, str]  # ids printed by traced_program.py


# (name, service, parent name, start ms, end ms) of the hand-built trace, in tree order
TREE = [
    ("GET /checkout", "frontend", None, 0, 100),
    ("auth", "frontend", "GET /checkout", 5, 15),
    ("call cart", "frontend", "GET /checkout", 20, 80),
    ("POST /cart", "cart", "call cart", 25, 75),
    ("SELECT cart_items", "cart", "POST /cart", 30, 60),
    (PAYLOAD, "cart", "POST /cart", 62, 70),
    ("render", "frontend", "GET /checkout", 85, 98),
]
DEPTH = {"GET /checkout": 0, "auth": 1, "call cart": 1, "POST /cart": 2, "SELECT cart_items": 3, PAYLOAD: 3, "render": 1}


def _ingest_tree(url: str, base_ns: int) -> tuple[str, dict[str, str]]:
    """Export TREE with explicit times through two tracer providers (one per service)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    providers = {}
    for svc in ("frontend", "cart"):
        p = TracerProvider(resource=Resource.create({"service.name": svc, "host.name": f"{svc}-1"}))
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
        providers[svc] = p
    other = providers["frontend"].get_tracer("t").start_span("other trace", start_time=base_ns)
    other.end(end_time=base_ns + MS)
    spans: dict[str, trace.Span] = {}
    kinds = {"GET /checkout": SpanKind.SERVER, "call cart": SpanKind.CLIENT, "POST /cart": SpanKind.SERVER, "SELECT cart_items": SpanKind.CLIENT}
    for name, svc, parent, a, _ in TREE:
        ctx = trace.set_span_in_context(spans[parent]) if parent else None
        links = [Link(other.get_span_context(), {"link.reason": "retry of"})] if name == "render" else None
        spans[name] = providers[svc].get_tracer(f"{svc}-lib", "1.2").start_span(
            name, context=ctx, kind=kinds.get(name, SpanKind.INTERNAL), start_time=base_ns + a * MS, links=links)
    sel = spans["SELECT cart_items"]
    sel.set_attribute("db.statement", "SELECT * FROM cart_items WHERE cart = ?")
    sel.add_event("retry", {"attempt": 2}, timestamp=base_ns + 40 * MS)
    sel.set_status(Status(StatusCode.ERROR, "deadlock detected"))
    spans[PAYLOAD].set_attribute("note", PAYLOAD)
    for name, _, _, _, b in reversed(TREE):
        spans[name].end(end_time=base_ns + b * MS)
    for p in providers.values():
        p.shutdown()
    ids = {name: format(s.get_span_context().span_id, "016x") for name, s in spans.items()}
    return format(spans["GET /checkout"].get_span_context().trace_id, "032x"), ids


def _wait(pred: object, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not there in time")


def _wait_ingested(url: str, trace_ids: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        for tid in trace_ids:
            _wait(lambda t=tid: c.get(f"/api/traces/{t}").status_code == 200, f"trace {tid}")
        _wait(lambda: "shop-agent" in c.get("/api/v1/services", params={"from": "now-15m"}).json(), "the program's profiles")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    build_ui()
    tmp = tmp_path_factory.mktemp("traces")
    for servers in server_list():
        srv = start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.05", tmp=tmp)
        prog = subprocess.Popen([sys.executable, str(Path(__file__).with_name("traced_program.py")), srv.url, "1.0"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        base = time.time_ns() - 120 * 1_000_000_000
        trace_id, ids = _ingest_tree(srv.url, base)
        out, err = prog.communicate(timeout=120)
        assert prog.returncode == 0, err[-3000:]
        program = json.loads(out.strip().splitlines()[-1])
        _wait_ingested(srv.url, [trace_id, program["checkout_trace"], program["reindex_trace"]])
        yield Traced(srv, trace_id, ids, base, program)


@pytest.fixture
def page(browser: object, traced: Traced) -> Iterator[object]:
    with guarded_page(browser, traced.server.url) as p:
        yield p


def shot(page: object, tmp_path: Path, name: str) -> None:
    path = screenshot(page, tmp_path, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / path.name).write_bytes(path.read_bytes())


def state(page: object) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)  # type: ignore[attr-defined]


def open_trace(page: object, traced: Traced, trace_id: str, extra: str = "") -> None:
    page.goto(f"{traced.server.url}/?view=trace&trace={trace_id}{extra}")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=span-row]", timeout=15_000)  # type: ignore[attr-defined]


def rows(page: object) -> list[dict[str, str]]:
    return page.eval_on_selector_all(  # type: ignore[attr-defined]
        "[data-testid=span-row]",
        "rs => rs.map(r => ({name: r.querySelector('[data-testid=span-name]').textContent, depth: r.dataset.depth, id: r.dataset.spanId, service: r.dataset.service, error: r.dataset.error ?? ''}))")


def test_search_finds_the_trace_and_opens_it(page: object, traced: Traced, tmp_path: Path) -> None:
    page.goto(f"{traced.server.url}/?view=traces&from=now-1h")  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-service]", "frontend")  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-min]", "50ms")  # type: ignore[attr-defined]
    page.click("[data-testid=trace-search]")  # type: ignore[attr-defined]
    page.wait_for_selector(f"[data-testid=trace-result][data-trace-id='{traced.trace_id}']", timeout=15_000)  # type: ignore[attr-defined]
    found = page.eval_on_selector_all("[data-testid=trace-result]", "rs => rs.map(r => r.dataset.traceId)")  # type: ignore[attr-defined]
    assert found == [traced.trace_id]  # the 1 ms "other trace" of frontend is below 50ms
    row = page.inner_text(f"[data-testid=trace-result][data-trace-id='{traced.trace_id}']")  # type: ignore[attr-defined]
    assert "frontend" in row and "GET /checkout" in row and "100.0 ms" in row
    assert state(page)["tservice"] == ["frontend"] and state(page)["tmin"] == ["50ms"]
    shot(page, tmp_path, "trace-search")
    # tags: names and values suggested from the tag routes; a resource tag and the status filter
    page.fill("[data-testid=trace-service]", "")  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-min]", "")  # type: ignore[attr-defined]
    page.focus("[data-testid=trace-tag-name]")  # type: ignore[attr-defined]
    page.wait_for_selector("#trace-tag-names option[value='host.name']", state="attached", timeout=15_000)  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-tag-name]", "host.name")  # type: ignore[attr-defined]
    page.dispatch_event("[data-testid=trace-tag-name]", "change")  # type: ignore[attr-defined]
    page.wait_for_selector("#trace-tag-values option[value='cart-1']", state="attached", timeout=15_000)  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-tag-value]", "cart-1")  # type: ignore[attr-defined]
    page.click("[data-testid=trace-tag-add]")  # type: ignore[attr-defined]
    page.wait_for_function("() => new URLSearchParams(location.search).get('tt') === 'host.name=\"cart-1\"'")  # type: ignore[attr-defined]
    page.wait_for_selector(".trace-results[data-loaded=true]", state="attached", timeout=15_000)  # type: ignore[attr-defined]
    page.select_option("[data-testid=trace-status]", "error")  # type: ignore[attr-defined]
    page.wait_for_function("() => new URLSearchParams(location.search).get('tstatus') === 'error'")  # type: ignore[attr-defined]
    page.wait_for_selector(".trace-results[data-loaded=true] [data-testid=trace-result]", timeout=15_000)  # type: ignore[attr-defined]
    found = page.eval_on_selector_all("[data-testid=trace-result]", "rs => rs.map(r => r.dataset.traceId)")  # type: ignore[attr-defined]
    assert found == [traced.trace_id]
    page.fill("[data-testid=trace-min]", "1s")  # type: ignore[attr-defined]
    page.click("[data-testid=trace-search]")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=trace-results-empty]", timeout=15_000)  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-min]", "soon")  # type: ignore[attr-defined]
    page.click("[data-testid=trace-search]")  # type: ignore[attr-defined]
    assert "not a duration" in page.inner_text("[data-testid=trace-form-error]")  # type: ignore[attr-defined]
    page.go_back()  # type: ignore[attr-defined]
    page.click(f"[data-testid=trace-result][data-trace-id='{traced.trace_id}'] a")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=span-row]", timeout=15_000)  # type: ignore[attr-defined]
    assert state(page)["view"] == ["trace"] and state(page)["trace"] == [traced.trace_id]
    page.go_back()  # type: ignore[attr-defined]
    page.wait_for_selector(f"[data-testid=trace-result][data-trace-id='{traced.trace_id}']", timeout=15_000)  # type: ignore[attr-defined]


def test_waterfall_tree_geometry_and_collapse(page: object, traced: Traced, tmp_path: Path) -> None:
    open_trace(page, traced, traced.trace_id)
    got = rows(page)
    assert [(r["name"], int(r["depth"])) for r in got] == [(n, DEPTH[n]) for n, *_ in TREE]
    assert [r["service"] for r in got] == [svc for _, svc, *_ in TREE]
    assert [r["name"] for r in got if r["error"] == "true"] == ["SELECT cart_items"]
    # each bar sits at its span's offset and is as wide as its duration, against the 100 ms trace
    boxes = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "[data-testid=span-row]",
        "rs => rs.map(r => { const t = r.querySelector('.wf-track').getBoundingClientRect(); const b = r.querySelector('[data-testid=span-bar]').getBoundingClientRect(); return [t.x, t.width, b.x, b.width]; })")
    for (_, _, _, a, b), (tx, tw, bx, bw) in zip(TREE, boxes, strict=True):
        assert abs((bx - tx) - tw * a / 100) < 1.5, (a, bx - tx, tw)
        assert abs(bw - tw * (b - a) / 100) < 1.5, (b - a, bw, tw)
    assert "100.0 ms" in page.inner_text("[data-testid=trace-duration]")  # type: ignore[attr-defined]
    shot(page, tmp_path, "trace-waterfall")
    page.keyboard.press("t")  # type: ignore[attr-defined]
    shot(page, tmp_path, "trace-waterfall-dark")
    call = traced.spans["call cart"]
    page.click(f"[data-testid=span-row][data-span-id='{call}'] [data-testid=span-toggle]")  # type: ignore[attr-defined]
    page.wait_for_function("() => document.querySelectorAll('[data-testid=span-row]').length === 4")  # type: ignore[attr-defined]
    assert [r["name"] for r in rows(page)] == ["GET /checkout", "auth", "call cart", "render"]
    assert state(page)["collapsed"] == [call]
    page.click(f"[data-testid=span-row][data-span-id='{call}'] [data-testid=span-toggle]")  # type: ignore[attr-defined]
    page.wait_for_function("() => document.querySelectorAll('[data-testid=span-row]').length === 7")  # type: ignore[attr-defined]


def test_span_details(page: object, traced: Traced, tmp_path: Path) -> None:
    sel = traced.spans["SELECT cart_items"]
    open_trace(page, traced, traced.trace_id)
    page.click(f"[data-testid=span-row][data-span-id='{sel}']")  # type: ignore[attr-defined]
    d = page.wait_for_selector(f"[data-testid=span-details][data-span-id='{sel}']")  # type: ignore[attr-defined]
    assert state(page)["span"] == [sel]
    assert d.query_selector("[data-testid=span-status]").inner_text() == "ERROR"
    kv = lambda testid: dict(page.eval_on_selector_all(  # noqa: E731
        f"[data-testid=span-details] [data-testid={testid}] tr", "rs => rs.map(r => [r.children[0].textContent, r.children[1].textContent])"))
    ids = kv("span-ids")
    assert ids["span id"] == sel and ids["parent span id"] == traced.spans["POST /cart"] and ids["kind"] == "CLIENT"
    assert ids["status"] == "ERROR: deadlock detected" and ids["duration"] == "30.0 ms"
    assert ids["instrumentation scope"] == "cart-lib 1.2"
    assert kv("span-attributes")["db.statement"] == "SELECT * FROM cart_items WHERE cart = ?"
    assert kv("span-resource")["service.name"] == "cart" and kv("span-resource")["host.name"] == "cart-1"
    events = page.inner_text("[data-testid=span-details] [data-testid=span-events]")  # type: ignore[attr-defined]
    assert "+10.0 ms" in events and "retry" in events and "attempt = 2" in events
    shot(page, tmp_path, "trace-span-details")
    render = traced.spans["render"]
    page.click(f"[data-testid=span-row][data-span-id='{render}']")  # type: ignore[attr-defined]
    links = page.wait_for_selector(f"[data-testid=span-details][data-span-id='{render}'] [data-testid=span-links]")  # type: ignore[attr-defined]
    assert "link.reason=retry of" in links.inner_text()
    assert page.query_selector(f"[data-testid=span-details][data-span-id='{render}'] [data-testid=span-no-profile]")  # type: ignore[attr-defined]


def test_hostile_span_name_and_attribute_are_text(page: object, traced: Traced) -> None:
    bad = traced.spans[PAYLOAD]
    open_trace(page, traced, traced.trace_id, f"&span={bad}")
    page.wait_for_selector(f"[data-testid=span-details][data-span-id='{bad}']")  # type: ignore[attr-defined]
    assert page.inner_text(f"[data-testid=span-row][data-span-id='{bad}'] [data-testid=span-name]") == PAYLOAD  # type: ignore[attr-defined]
    note = page.inner_text("[data-testid=span-details] [data-testid=span-attributes] tr[data-key=note] td")  # type: ignore[attr-defined]
    assert note == PAYLOAD
    assert page.evaluate("() => window.__xss") is None and not page.query_selector("img")  # type: ignore[attr-defined]


def span_flame_names(page: object) -> list[str]:
    return page.evaluate("() => { const f = window.fleetprofExplorer.views.trace.profile.flame; const d = f.data; return d ? d.names : []; }")  # type: ignore[attr-defined]


def test_span_profile_jump(page: object, traced: Traced, tmp_path: Path) -> None:
    p = traced.program
    open_trace(page, traced, p["checkout_trace"])
    root = f"[data-testid=span-row][data-span-id='{p['checkout_span']}']"
    assert page.query_selector(f"{root} [data-testid=has-profile]")  # type: ignore[attr-defined]
    page.click(f"[data-testid=span-row][data-span-id='{p['price_span']}']")  # type: ignore[attr-defined]
    link = page.wait_for_selector("[data-testid=span-details] [data-testid=span-profile-open]")  # type: ignore[attr-defined]
    assert "local root checkout" in link.inner_text()  # the child's samples carry the root's id
    page.click(root)  # type: ignore[attr-defined]
    page.click(f"[data-testid=span-details][data-span-id='{p['checkout_span']}'] [data-testid=span-profile-open]")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=span-profile][data-loaded=true]", timeout=30_000)  # type: ignore[attr-defined]
    assert state(page)["profile"] == [p["checkout_span"]]
    total = page.get_attribute("[data-testid=span-profile] canvas.flame-canvas", "data-total")  # type: ignore[attr-defined]
    assert total and int(total) > 0
    names = span_flame_names(page)
    assert any("explorer_price_work" in n for n in names) and not any("explorer_reindex_work" in n for n in names)
    shot(page, tmp_path, "trace-span-profile")
    page.go_back()  # type: ignore[attr-defined]
    page.wait_for_function("() => document.querySelector('[data-testid=span-profile]').hidden")  # type: ignore[attr-defined]


def open_node_traces(page: object, traced: Traced, function: str) -> None:
    """The single view of the program's profiles (by the agent's application name), then the
    traces list of the first node of ``function`` through the node menu."""
    page.goto(f"{traced.server.url}/?service=shop-agent&type={CPU}&from=now-30m&layout=flame")  # type: ignore[attr-defined]
    page.wait_for_selector("canvas.flame-canvas[data-nodes]", timeout=15_000, state="attached")  # type: ignore[attr-defined]
    pos = page.evaluate(  # type: ignore[attr-defined]
        "(fn) => { const f = window.fleetprofExplorer.views.single.flame; const d = f.data; const i = d.names.findIndex(n => n.includes(fn)); "
        "for (let k = 1; k < d.n; k++) if (d.name[k] === i) return f.centre(k); return null; }", function)
    assert pos, f"the program's {function} is not in the flame graph"
    page.click("canvas.flame-canvas", position=pos, button="right")  # type: ignore[attr-defined]
    page.click("[data-testid=node-menu] [data-testid=menu-traces]")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=exemplars][data-loaded=true]", timeout=15_000)  # type: ignore[attr-defined]
    assert function in state(page)["exemplars"][0]


def test_flame_node_to_traces(page: object, traced: Traced, tmp_path: Path) -> None:
    p = traced.program
    open_node_traces(page, traced, "explorer_reindex_work")
    found = page.eval_on_selector_all("[data-testid=exemplar]", "rs => rs.map(r => [r.dataset.traceId, r.dataset.spanId])")  # type: ignore[attr-defined]
    assert found == [[p["reindex_trace"], p["reindex_span"]]]
    shot(page, tmp_path, "flame-node-traces")
    page.click("[data-testid=exemplar-link]")  # type: ignore[attr-defined]
    page.wait_for_selector(f"[data-testid=span-details][data-span-id='{p['reindex_span']}']", timeout=15_000)  # type: ignore[attr-defined]
    assert state(page)["trace"] == [p["reindex_trace"]]


def test_unknown_and_malformed_trace_ids(page: object, traced: Traced) -> None:
    page.goto(f"{traced.server.url}/?view=trace&trace={'ab' * 16}")  # type: ignore[attr-defined]
    assert "not found" in page.wait_for_selector("[data-testid=trace-error]", timeout=15_000).inner_text()  # type: ignore[attr-defined]
    page.goto(f"{traced.server.url}/?view=trace&trace=%3Cb%3Ezz")  # type: ignore[attr-defined]
    msg = page.wait_for_selector("[data-testid=trace-error]", timeout=15_000).inner_text()  # type: ignore[attr-defined]
    assert "'<b>zz' is not a trace id" in msg and not page.query_selector("#view b")  # type: ignore[attr-defined]


def test_flame_node_of_a_span_the_trace_store_lacks(page: object, traced: Traced, tmp_path: Path) -> None:
    p = traced.program
    open_node_traces(page, traced, "explorer_orphan_work")
    rows = page.eval_on_selector_all("[data-testid=exemplar]", "rs => rs.map(r => [r.dataset.traceId, r.dataset.spanId, r.dataset.stored])")  # type: ignore[attr-defined]
    assert rows == [[p["orphan_trace"], p["orphan_span"], "false"]]
    cell = page.inner_text("[data-testid=exemplar] [data-testid=exemplar-not-stored]")  # type: ignore[attr-defined]
    assert "trace not stored" in cell and p["orphan_trace"] in cell
    assert not page.query_selector("[data-testid=exemplar-link]")  # type: ignore[attr-defined]
    shot(page, tmp_path, "flame-node-trace-not-stored")


def span_profile(traced: Traced, **params: str) -> httpx.Response:
    return httpx.get(f"{traced.server.url}/api/v1/span-profile", params={"query": CPU, "from": "now-1h", **params}, timeout=30)


def flame_names(doc: dict[str, object]) -> list[str]:
    return list(doc["flamebearer"]["names"])  # type: ignore[index]


def test_span_profile_route_of_a_trace_search(traced: Traced) -> None:
    p = traced.program
    # one span by id, with a selector that names no service (the agent's name is not "shop")
    one = span_profile(traced, spanId=p["checkout_span"]).json()
    assert one["spans"] == 1 and one["profiledSpans"] == 1 and one["flamebearer"]["numTicks"] > 0
    by_name = span_profile(traced, name="checkout").json()
    assert (by_name["spans"], by_name["profiledSpans"], by_name["truncated"]) == (1, 1, False)
    assert by_name["flamebearer"] == one["flamebearer"]
    names = flame_names(by_name)
    assert any("explorer_price_work" in n for n in names) and not any("explorer_reindex_work" in n for n in names)
    # every span of service shop: checkout, price (its samples carry checkout's id), reindex; the
    # unexported span is not in the trace store
    shop = span_profile(traced, service="shop").json()
    assert (shop["spans"], shop["profiledSpans"], shop["truncated"]) == (3, 2, False)
    names = flame_names(shop)
    assert any("explorer_reindex_work" in n for n in names) and any("explorer_price_work" in n for n in names)
    assert not any("explorer_orphan_work" in n for n in names)
    first = span_profile(traced, service="shop", limit="1").json()
    assert (first["spans"], first["truncated"]) == (1, True)
    tagged = span_profile(traced, tags='deployment.environment="test"', name="reindex", format="folded")
    assert tagged.status_code == 200 and "explorer_reindex_work" in tagged.text and "explorer_price_work" not in tagged.text
    assert span_profile(traced, service="shop", status="error").json()["spans"] == 0
    none = span_profile(traced, service="shop", minDuration="99999999999999999999h").json()
    assert (none["spans"], none["flamebearer"]["numTicks"]) == (0, 0)
    long_ago = span_profile(traced, service="shop", start="1000", end="2000").json()
    assert long_ago["spans"] == 0
    for bad in ({"name": "checkout", "spanId": p["checkout_span"]}, {"name": "checkout", "spanName": "checkout"},
                {"service": "shop", "status": "bogus"}, {"service": "shop", "minDuration": "soon"}, {"maxDuration": "9" * 400 + "s"}, {"tags": "novalue"},
                {"service": "shop", "limit": "0"}, {"service": "shop", "start": "later"}, {"service": "shop", "start": "20", "end": "10"}, {}):
        r = span_profile(traced, **bad)
        assert r.status_code == 400, (bad, r.text)
        assert set(r.json()) == {"code", "message"}


def test_flame_graph_of_matching_spans(page: object, traced: Traced, tmp_path: Path) -> None:
    page.goto(f"{traced.server.url}/?view=traces&from=now-1h")  # type: ignore[attr-defined]
    assert page.get_attribute("[data-testid=search-profile-open]", "disabled") is not None  # type: ignore[attr-defined]  # no condition yet
    page.fill("[data-testid=trace-service]", "shop")  # type: ignore[attr-defined]
    page.fill("[data-testid=trace-name]", "checkout")  # type: ignore[attr-defined]
    page.click("[data-testid=trace-search]")  # type: ignore[attr-defined]
    page.wait_for_selector(f"[data-testid=trace-result][data-trace-id='{traced.program['checkout_trace']}']", timeout=15_000)  # type: ignore[attr-defined]
    page.click("[data-testid=search-profile-open]")  # type: ignore[attr-defined]
    panel = "[data-testid=search-profile][data-loaded=true]"
    page.wait_for_selector(panel, timeout=30_000)  # type: ignore[attr-defined]
    assert state(page)["tprofile"] == ["1"]
    assert page.get_attribute(panel, "data-spans") == "1" and page.get_attribute(panel, "data-profiled-spans") == "1"  # type: ignore[attr-defined]
    assert "1 of 1 matching span" in page.inner_text("[data-testid=search-profile] [data-testid=span-profile-info]")  # type: ignore[attr-defined]
    names = page.evaluate("() => window.fleetprofExplorer.views.traces.profile.flame.data.names")  # type: ignore[attr-defined]
    assert any("explorer_price_work" in n for n in names) and not any("explorer_reindex_work" in n for n in names)
    shot(page, tmp_path, "trace-search-span-profile")
    # the state is the URL: a reload shows the same flame graph; a child span's search explains
    page.reload()  # type: ignore[attr-defined]
    page.wait_for_selector(panel, timeout=30_000)  # type: ignore[attr-defined]
    assert page.get_attribute("[data-testid=search-profile] canvas.flame-canvas", "data-total") == page.evaluate(  # type: ignore[attr-defined]
        "() => String(window.fleetprofExplorer.views.traces.profile.flame.data.total[0])")
    page.fill("[data-testid=trace-name]", "price")  # type: ignore[attr-defined]
    page.click("[data-testid=trace-search]")  # type: ignore[attr-defined]
    empty = page.wait_for_selector("[data-testid=search-profile] [data-testid=span-profile-empty]", timeout=30_000)  # type: ignore[attr-defined]
    assert "local root" in empty.inner_text()
    page.click("[data-testid=search-profile-close]")  # type: ignore[attr-defined]
    page.wait_for_function("() => document.querySelector('[data-testid=search-profile]').hidden")  # type: ignore[attr-defined]
    assert "tprofile" not in state(page)
