"""``/pyroscope/render`` with ``groupBy`` (Pyroscope's ``groups``: a timeline per label
value) and ``format=dot`` (Graphviz text), on the querier tests' seeded server."""

from __future__ import annotations

import re
from typing import Any

import httpx
from querier_support import CPU, TENANT_A, native

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_ATTRS = rf"\[(?:\s*\w+=(?:{_QUOTED}|[\w.#]+))*\s*\]"
_NODE = re.compile(rf"^(\w+) {_ATTRS};$")
_EDGE = re.compile(rf"^(\w+) -> (\w+) {_ATTRS};$")


def check_dot(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Structural DOT check (no Graphviz here): one ``digraph "..." {`` … ``}``, every line
    a default-attribute, node or edge statement with well-formed quoted strings, and every
    edge between declared nodes. Returns the node ids and edges."""
    lines = text.strip().splitlines()
    assert re.fullmatch(rf"digraph {_QUOTED} \{{", lines[0]) and lines[-1] == "}"
    nodes: set[str] = set()
    edges: list[tuple[str, str]] = []
    for line in lines[1:-1]:
        if line.startswith("node "):
            assert re.fullmatch(rf"node {_ATTRS};", line), line
        elif m := _EDGE.match(line):
            edges.append((m[1], m[2]))
        else:
            m = _NODE.match(line)
            assert m, line
            nodes.add(m[1])
    assert {n for e in edges for n in e} <= nodes
    return nodes, edges


def test_render_group_by_gives_a_timeline_per_value(seeded: dict[str, Any]) -> None:
    rng = {"from": str(seeded["start"]), "until": str(seeded["end"])}
    query = CPU + '{service_name="worker"}'
    doc = native(seeded["url"], "/pyroscope/render", TENANT_A, query=query, groupBy="env", **rng)
    assert set(doc["groups"]) == {"dev", "prod"}
    for env, tl in doc["groups"].items():
        assert set(tl) == {"startTime", "samples", "durationDelta"}
        one = native(seeded["url"], "/pyroscope/render", TENANT_A, query=CPU + f'{{service_name="worker",env="{env}"}}', **rng)
        assert tl == one["timeline"]
    summed = [sum(x) for x in zip(*(tl["samples"] for tl in doc["groups"].values()), strict=True)]
    assert summed == doc["timeline"]["samples"]
    plain = native(seeded["url"], "/pyroscope/render", TENANT_A, query=query, **rng)
    assert plain["groups"] is None and plain["flamebearer"] == doc["flamebearer"]
    star = native(seeded["url"], "/pyroscope/render", TENANT_A, query=CPU + "{}", groupBy="version", **rng)
    assert set(star["groups"]) == {"1.0", "1.1", "*"}  # the api service has no version label


def test_render_dot_is_the_call_graph(seeded: dict[str, Any]) -> None:
    rng = {"from": str(seeded["start"]), "until": str(seeded["end"])}
    r = native(seeded["url"], "/pyroscope/render", TENANT_A, query=CPU + '{service_name="worker"}', format="dot", **rng)
    assert r.headers["content-type"].startswith("text/vnd.graphviz")
    nodes, edges = check_dot(r.text)
    labels = dict(re.findall(r'^(\w+) \[label="([^\\"]+)', r.text, re.M))
    named = {labels[a]: a for a in nodes if a in labels}
    assert {"main", "handle", "parse", "render", "gc"} <= set(named)
    assert (named["main"], named["handle"]) in edges and (named["handle"], named["parse"]) in edges
    big = native(seeded["url"], "/pyroscope/render", TENANT_A, query=CPU + '{service_name="api"}', format="dot", maxNodes="5", **rng)
    assert len(check_dot(big.text)[0]) == 5 + 1  # five functions and the legend
    empty = httpx.get(seeded["url"] + "/pyroscope/render", params={"query": CPU + '{service_name="none"}', "format": "dot", **rng},
                      headers={"X-Scope-OrgID": TENANT_A})
    assert (empty.status_code, empty.text) == (200, "")
    bad = httpx.get(seeded["url"] + "/pyroscope/render", params={"query": CPU, "format": "png"}, headers={"X-Scope-OrgID": TENANT_A})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
