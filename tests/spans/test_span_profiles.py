"""Span profiles end to end: the real pyroscope-io agent with pyroscope-otel's span
processor (real OpenTelemetry SDK) pushes to a real server; SelectMergeSpanProfile
(Connect, protobuf and JSON), /api/v1/span-profile and /api/v1/exemplars answer per span."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from fleetprof.formats.proto import querier_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import CPU_TYPE, ServerProc, server_list  # noqa: E402

HERE = Path(__file__).resolve().parent
METHOD = "/querier.v1.QuerierService/SelectMergeSpanProfile"
QUERY = CPU_TYPE + '{service_name="spanapp"}'


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


@pytest.fixture(scope="module")
def run(servers: list[ServerProc], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("spans")
    srv = ServerProc(f"file://{tmp}/data", f"sqlite:///{tmp}/index.db", log=tmp / "server.log")
    servers.append(srv)
    srv.wait_ready(180)  # a loaded machine: warm-up can take a while
    out = subprocess.run([sys.executable, str(HERE / "span_program.py"), srv.url, "1.5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    client = httpx.Client(base_url=srv.url, timeout=30)
    deadline = time.monotonic() + 30
    while True:  # the agent's last upload may still be in flight
        got = {k: _folded(client, ids[k]["span_id"]) for k in ("a", "b")}
        if all(got.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {"url": srv.url, "client": client, "ids": ids}


def _folded(client: httpx.Client, span_id: str) -> str:
    r = client.get("/api/v1/span-profile", params={"query": QUERY, "from": "now-1h", "spanId": span_id, "format": "folded"})
    assert r.status_code == 200, r.text
    return r.text


def _names(fg: Any) -> set[str]:
    names = list(fg.names)
    return {names[lvl.values[i + 3]] for lvl in fg.levels for i in range(0, len(lvl.values), 4)}


def _connect(run: dict[str, Any], req: querier_pb2.SelectMergeSpanProfileRequest, codec: str) -> httpx.Response:
    if codec == "proto":
        body, ctype = req.SerializeToString(), "application/proto"
    else:
        body, ctype = json_format.MessageToJson(req).encode(), "application/json"
    return run["client"].post(METHOD, content=body, headers={"Content-Type": ctype})


def _request(span_ids: list[str]) -> querier_pb2.SelectMergeSpanProfileRequest:
    now = int(time.time() * 1000)
    return querier_pb2.SelectMergeSpanProfileRequest(
        profile_typeID=CPU_TYPE, label_selector='{service_name="spanapp"}', span_selector=span_ids,
        start=now - 3_600_000, end=now + 60_000)


@pytest.mark.parametrize("codec", ["proto", "json"])
def test_each_span_has_its_own_flame_graph_over_connect(run: dict[str, Any], codec: str) -> None:
    a, b = run["ids"]["a"]["span_id"], run["ids"]["b"]["span_id"]
    graphs = {}
    for key, sid in (("a", a), ("b", b)):
        r = _connect(run, _request([sid]), codec)
        assert r.status_code == 200, r.text
        msg = querier_pb2.SelectMergeSpanProfileResponse()
        if codec == "proto":
            msg.ParseFromString(r.content)
        else:
            json_format.Parse(r.text, msg)
        graphs[key] = msg.flamegraph
    assert graphs["a"].total > 0 and graphs["b"].total > 0
    assert any("spin_alpha" in n for n in _names(graphs["a"]))
    assert not any("spin_beta" in n for n in _names(graphs["a"]))
    assert any("spin_beta" in n for n in _names(graphs["b"]))
    assert not any("spin_alpha" in n for n in _names(graphs["b"]))
    both = querier_pb2.SelectMergeSpanProfileResponse.FromString(_connect(run, _request([a, b]), "proto").content)
    assert both.flamegraph.total == graphs["a"].total + graphs["b"].total


def test_empty_span_selector_is_an_empty_flame_graph_and_bad_ids_are_400(run: dict[str, Any]) -> None:
    r = _connect(run, _request([]), "proto")
    assert r.status_code == 200
    assert querier_pb2.SelectMergeSpanProfileResponse.FromString(r.content).flamegraph.total == 0
    for bad in ("xyz", "00000000000000000", "0000000000000000", "zz17183f26a089dq"):
        r = _connect(run, _request([bad]), "json")
        assert r.status_code == 400, bad
        assert r.json()["code"] == "invalid_argument"
        r = run["client"].get("/api/v1/span-profile", params={"query": QUERY, "spanId": bad})
        assert r.status_code == 400 and "span id" in r.json()["message"]


def test_native_span_profile_formats_and_search(run: dict[str, Any]) -> None:
    c, ids = run["client"], run["ids"]
    folded_a = _folded(c, ids["a"]["span_id"])
    assert "spin_alpha" in folded_a and "spin_beta" not in folded_a
    doc = c.get("/api/v1/span-profile", params={"query": QUERY, "from": "now-1h", "spanId": ids["b"]["span_id"]}).json()
    assert doc["spans"] == 1 and doc["flamebearer"]["numTicks"] > 0
    assert any("spin_beta" in n for n in doc["flamebearer"]["names"])
    assert not any("spin_alpha" in n for n in doc["flamebearer"]["names"])
    by_name = c.get("/api/v1/span-profile", params={"query": QUERY, "from": "now-1h", "spanName": "span_a", "format": "folded"})
    assert by_name.status_code == 200 and by_name.text == folded_a
    svg = c.get("/api/v1/span-profile", params={"query": QUERY, "from": "now-1h", "spanId": ids["a"]["span_id"], "format": "svg"})
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<") and "spin_alpha" in svg.text
    assert c.get("/api/v1/span-profile", params={"query": QUERY}).status_code == 400  # no span given


def test_span_labels_are_not_series_labels(run: dict[str, Any]) -> None:
    c = run["client"]
    names = c.get("/api/v1/labels", params={"from": "now-1h"}).json()
    assert "service_name" in names
    assert not {"span_id", "span_name", "trace_id"} & set(names)
    series = c.post("/querier.v1.QuerierService/Series", json={"matchers": ['{service_name="spanapp"}']},
                    headers={"Content-Type": "application/json"}).json()
    sets = {tuple(sorted((p["name"], p["value"]) for p in s["labels"] if p["name"] != "__profile_type__")) for s in series["labelsSet"]}
    assert len(sets) == 1  # one series for both spans


def test_exemplars_of_a_node_in_span_a_name_span_a(run: dict[str, Any]) -> None:
    c, ids = run["client"], run["ids"]
    line = next(x for x in _folded(c, ids["a"]["span_id"]).splitlines() if "spin_alpha" in x)
    frames = line.rsplit(" ", 1)[0].split(";")
    path = ";".join(frames[: next(i for i, f in enumerate(frames) if "spin_alpha" in f) + 1])
    r = c.get("/api/v1/exemplars", params={"query": QUERY, "from": "now-1h", "node": path, "limit": "5"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["total_spans"] == 1
    top = doc["exemplars"][0]
    assert top["span_id"] == ids["a"]["span_id"] and top["trace_id"] == ids["a"]["trace_id"]
    assert top["span_name"] == "span_a" and top["value"] > 0 and doc["unit"] == "nanoseconds"
    root = c.get("/api/v1/exemplars", params={"query": QUERY, "from": "now-1h", "node": frames[0]}).json()
    assert {e["span_id"] for e in root["exemplars"]} >= {ids["a"]["span_id"]}
    assert c.get("/api/v1/exemplars", params={"query": QUERY, "from": "now-1h"}).status_code == 400
    assert c.get("/api/v1/exemplars", params={"query": QUERY, "nodeId": "0xnothex"}).status_code == 400
