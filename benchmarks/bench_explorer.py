"""The explorer's speed in Chromium (headless, software rendering), from its performance marks.

A ``fleetprof serve`` on 127.0.0.1 is seeded with one hour of a service on 100 instances
(one profile per instance per minute, about 300 distinct stacks each) and one profile of
about 52,000 flame-graph nodes. Printed, each next to the issue's target:

* first useful paint: navigation start to the first flame graph drawn for the 1 h x 100
  instance view (``fleetprof:first-useful-paint``), cold (first load) and warm (median of
  the next loads);
* brush re-query: a drag across the timeline, from the brush's callback to the redrawn
  flame graph (``fleetprof:query-to-paint``), median of 5 brushes;
* flame-graph redraw of the 52k-node profile: the draw call alone (median of 30) and the
  frame time with the browser's raster and compositing (30 frames in ``requestAnimationFrame``).

``python -m benchmarks.bench_explorer [--data DIR]`` (``--data``: keep the seeded store in DIR
and reuse it on the next run, within the hour it covers; needs the built explorer: ``make ui``; Chromium at
/usr/bin/chromium and Python Playwright).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "server"))
from serverutil import PUSH, PUSH_HEADERS, pprof_bytes, server_list, start_server  # noqa: E402

from fleetprof.formats.proto import push_pb2  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
INSTANCES = 100
MINUTES = 60


def _stacks(rng: random.Random) -> list[list[str]]:
    handlers = [f"github.com/acme/shop/api.Handler{i}" for i in range(20)]
    libs = ["encoding/json.Marshal", "database/sql.(*DB).Query", "net/http.(*Client).Do", "runtime.mallocgc",
            "compress/gzip.(*Writer).Write", "crypto/tls.(*Conn).Write", "regexp.(*Regexp).Match", "sort.Slice"]
    out = []
    for h in handlers:
        for lib in libs:
            out.append(["runtime.main", "net/http.(*conn).serve", h, lib])
            if rng.random() < 0.8:
                out.append(["runtime.main", "net/http.(*conn).serve", h, lib, "runtime.mallocgc", "runtime.memclr"])
    return out


def _batch(service: str, profiles: list[tuple[dict[str, str], bytes]]) -> bytes:
    import gzip

    req = push_pb2.PushRequest()
    for labels, pprof in profiles:
        s = req.series.add()
        for k, v in {"__name__": "process_cpu", "service_name": service, **labels}.items():
            lp = s.labels.add()
            lp.name, lp.value = k, v
        s.samples.add(raw_profile=pprof, ID="x")
    return gzip.compress(req.SerializeToString())


def seed(url: str, now_s: float) -> None:
    rng = random.Random(7)
    stacks = _stacks(rng)
    with httpx.Client(base_url=url, timeout=120) as c:
        for m in range(MINUTES):
            t_ns = int((now_s - 3600 + m * 60 + 1) * 1e9)
            batch = []
            for i in range(INSTANCES):
                values = [rng.randint(1, 50) * 10_000_000 for _ in stacks]
                batch.append(({"instance": f"i-{i:03d}", "region": ("eu", "us", "ap")[i % 3]}, pprof_bytes(stacks, values, time_ns=t_ns)))
            r = c.post(PUSH, content=_batch("shop", batch), headers=PUSH_HEADERS)
            assert r.status_code == 200, r.text
        wide = [["main", f"mod{a}.run", f"mod{a}/pkg{b}.call", f"mod{a}/pkg{b}.leaf{k}"] for a in range(50) for b in range(40) for k in range(25)]
        vals = [rng.randint(1, 100) * 1_000_000 for _ in wide]
        r = c.post(PUSH, content=_batch("wide", [({}, pprof_bytes(wide, vals, time_ns=int((now_s - 600) * 1e9)))]), headers=PUSH_HEADERS)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while c.get("/api/v1/services", params={"from": "now-2h"}).json() != ["shop", "wide"]:
            if time.monotonic() > deadline:
                raise RuntimeError("seeded services not listed in time")
            time.sleep(0.1)


MARK = "() => { const e = performance.getEntriesByName('fleetprof:first-useful-paint'); return e.length ? e[0].startTime : null; }"
MEASURES = "() => performance.getEntriesByName('fleetprof:query-to-paint').map(e => e.duration)"


REQUESTS = ("/explorer/flamebearer", "/api/v1/timeline")
SERVER = ("(paths) => paths.map(p => performance.getEntriesByType('resource').filter(e => e.name.includes(p))"
          ".map(e => e.responseEnd - e.requestStart)[0])")


def first_paint(browser: object, url: str, runs: int = 4) -> tuple[list[float], list[list[float]]]:
    """Navigation to first flame graph, and the own time of each of :data:`REQUESTS`
    (flame graph, timeline: the page sends them at once), per load."""
    out, server = [], []
    for _ in range(runs):
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.goto(f"{url}/?service=shop&from=now-1h")
        page.wait_for_function(MARK, timeout=60_000)
        out.append(page.evaluate(MARK))
        page.wait_for_function(f"(paths) => ({SERVER})(paths).every(t => t !== undefined)", arg=list(REQUESTS), timeout=60_000)
        server.append(page.evaluate(SERVER, list(REQUESTS)))
        page.close()
    return out, server


def brushes(browser: object, url: str, n: int = 5) -> list[float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{url}/?service=shop&from=now-1h")
    page.wait_for_function(MARK, timeout=60_000)
    out = []
    for k in range(n):
        page.goto(f"{url}/?service=shop&from=now-1h")
        page.wait_for_function(MARK, timeout=60_000)
        box = page.wait_for_selector("[data-testid=timeline] .u-over").bounding_box()
        y = box["y"] + box["height"] / 2
        a = 0.1 + 0.12 * k
        page.mouse.move(box["x"] + box["width"] * a, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * (a + 0.3), y, steps=5)
        page.mouse.up()
        page.wait_for_function(f"() => ({MEASURES})().length >= 2", timeout=60_000)
        out.append(page.evaluate(MEASURES)[-1])
    page.close()
    return out


REDRAW = """async () => {
  const v = window.fleetprofExplorer.views.single;
  const calls = v.benchRedraw(30);
  const frame = await new Promise((resolve) => {
    let n = 0; const t0 = performance.now();
    const f = () => { v.flame.render(); if (++n < 30) requestAnimationFrame(f); else requestAnimationFrame(() => resolve((performance.now() - t0) / 30)); };
    requestAnimationFrame(f);
  });
  return { calls, frame, nodes: Number(v.flame.canvas.dataset.nodes), drawn: Number(v.flame.canvas.dataset.drawn) };
}"""


def redraw(browser: object, url: str) -> dict[str, object]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{url}/?service=wide&from=now-1h&maxNodes=100000&layout=flame")
    page.wait_for_selector("canvas.flame-canvas[data-nodes]", state="attached", timeout=60_000)
    got = page.evaluate(REDRAW)
    page.close()
    return got


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as tmp_s:
        return run(args.data or Path(tmp_s))


def run(tmp: Path) -> int:
    from playwright.sync_api import sync_playwright

    tmp.mkdir(parents=True, exist_ok=True)
    fresh = not (tmp / "index.db").exists()
    for servers in server_list():
        if True:
            srv = start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.2", tmp=tmp)
            if fresh:
                t0 = time.perf_counter()
                seed(srv.url, time.time())
                print(f"seeded {INSTANCES} instances x {MINUTES} min + a 52k-node profile in {time.perf_counter() - t0:.1f} s")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                fp, sv = first_paint(browser, srv.url)
                fb, tl = ([x[k] for x in sv] for k in range(len(REQUESTS)))
                print(f"first useful paint, 1 h x {INSTANCES} instances "
                      f"({'segments cached by the server that ingested them' if fresh else 'server restarted: nothing cached'}): "
                      f"cold {fp[0]:.0f} ms, warm median {statistics.median(fp[1:]):.0f} ms "
                      f"(target < 1000 ms); of which the flame graph request (server merge of the L0 segments): "
                      f"cold {fb[0]:.0f} ms, warm median {statistics.median(fb[1:]):.0f} ms; "
                      f"timeline request alongside: cold {tl[0]:.0f} ms, warm median {statistics.median(tl[1:]):.0f} ms")
                br = brushes(browser, srv.url)
                print(f"brush re-query to redrawn flame graph: median {statistics.median(br):.0f} ms, max {max(br):.0f} ms over {len(br)} (target < 300 ms)")
                rd = redraw(browser, srv.url)
                calls = rd["calls"]
                print(f"flame-graph redraw, {rd['nodes']} nodes ({rd['drawn']} wide enough to draw): draw call median "
                      f"{statistics.median(calls):.1f} ms, frame with raster {rd['frame']:.1f} ms (target < 50 ms)")
                browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
