"""querier.v1 / settings.v1 over Connect on a real server, in binary protobuf and JSON,
checked against the native API on the same data; errors, tenancy and auth."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest
from querier_support import CPU, TENANT_A, TENANT_B, Connect, Protos, native, seed, start_server

Q = "querier.v1.QuerierService"
CODECS = ["proto", "json"]


def client(seeded: dict[str, Any], codec: str, tenant: str = TENANT_A) -> Connect:
    return Connect(seeded["url"], codec, {"X-Scope-OrgID": tenant})


def rng(seeded: dict[str, Any]) -> dict[str, int]:
    return {"start": seeded["start"], "end": seeded["end"]}


def native_range(seeded: dict[str, Any]) -> dict[str, str]:
    return {"from": str(seeded["start"]), "until": str(seeded["end"])}


def levels_to_tree(levels: list[list[int]], names: list[str]) -> dict[str, Any]:
    """Grafana's ``levelsToTree``: the flame graph's 4-int groups back into a tree (each
    group's offset is relative to the end of the previous group of its level)."""
    root = {"start": 0, "value": levels[0][1], "self": levels[0][2], "name": names[levels[0][3]], "children": []}
    parents = [root]
    for level in levels[1:]:
        nxt, offset, i, queue = [], 0, 0, list(parents)
        parent = queue.pop(0)
        while i < len(level):
            start, value, self_ = level[i] + offset, level[i + 1], level[i + 2]
            if start >= parent["start"] and start + value <= parent["start"] + parent["value"]:
                node = {"start": start, "value": value, "self": self_, "name": names[level[i + 3]], "children": []}
                parent["children"].append(node)
                nxt.append(node)
                offset, i = start + value, i + 4
            else:
                assert queue, "a block outside every parent"
                parent = queue.pop(0)
        parents = nxt
    return root


def _walk(node: dict[str, Any], path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    out = {path: node["self"]} if node["self"] and path else {}
    for c in node["children"]:
        for k, v in _walk(c, (*path, c["name"])).items():
            out[k] = out.get(k, 0) + v
    return out


def _levels(fg: Any) -> list[list[int]]:
    return [list(level.values) for level in fg.levels]


@pytest.mark.parametrize("codec", CODECS)
def test_profile_types_match_native_and_grafana_shape(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    res = client(seeded, codec).call(f"{Q}/ProfileTypes", pb("querier.v1.ProfileTypesRequest", **rng(seeded)),
                                     pb.cls("querier.v1.ProfileTypesResponse"))
    got = [t.ID for t in res.profile_types]
    assert got == native(seeded["url"], "/api/v1/profile-types", TENANT_A, **native_range(seeded))
    assert CPU in got and any(t.startswith("memory:") for t in got)
    for t in res.profile_types:
        assert t.ID == ":".join([t.name, t.sample_type, t.sample_unit, t.period_type, t.period_unit])


@pytest.mark.parametrize("codec", CODECS)
def test_label_names_and_values_match_native(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    c = client(seeded, codec)
    sel = '{service_name="worker"}'
    names = c.call(f"{Q}/LabelNames", pb("types.v1.LabelNamesRequest", matchers=[sel], **rng(seeded)),
                   pb.cls("types.v1.LabelNamesResponse")).names
    want = native(seeded["url"], "/api/v1/labels", TENANT_A, query=sel, **native_range(seeded))
    assert [n for n in names if n != "__profile_type__"] == want and "version" in want
    values = c.call(f"{Q}/LabelValues", pb("types.v1.LabelValuesRequest", name="env", matchers=["{}"], **rng(seeded)),
                    pb.cls("types.v1.LabelValuesResponse")).names
    assert list(values) == native(seeded["url"], "/api/v1/labels/env/values", TENANT_A, **native_range(seeded)) == ["dev", "prod"]
    types = c.call(f"{Q}/LabelValues", pb("types.v1.LabelValuesRequest", name="__profile_type__",
                                          matchers=['{service_name="worker"}'], **rng(seeded)),
                   pb.cls("types.v1.LabelValuesResponse")).names
    assert list(types) == [CPU]


@pytest.mark.parametrize("codec", CODECS)
def test_series_lists_label_sets_with_profile_types(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    res = client(seeded, codec).call(
        f"{Q}/Series", pb("querier.v1.SeriesRequest", matchers=["{}"], label_names=["service_name", "__profile_type__"], **rng(seeded)),
        pb.cls("querier.v1.SeriesResponse"))
    sets = {tuple((lp.name, lp.value) for lp in ls.labels) for ls in res.labels_set}
    ptypes = native(seeded["url"], "/api/v1/profile-types", TENANT_A, **native_range(seeded))
    assert (("__profile_type__", CPU), ("service_name", "worker")) in sets
    assert {v for s in sets for k, v in s if k == "__profile_type__"} == set(ptypes)
    assert {v for s in sets for k, v in s if k == "service_name"} == {"api", "worker"}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("selector", ['{service_name="api"}', '{service_name="worker", env="prod"}'])
def test_select_merge_stacktraces_matches_render(seeded: dict[str, Any], pb: Protos, codec: str, selector: str) -> None:
    req = pb("querier.v1.SelectMergeStacktracesRequest", profile_typeID=CPU, label_selector=selector, max_nodes=1024, **rng(seeded))
    fg = client(seeded, codec).call(f"{Q}/SelectMergeStacktraces", req, pb.cls("querier.v1.SelectMergeStacktracesResponse")).flamegraph
    doc = native(seeded["url"], "/pyroscope/render", TENANT_A, query=CPU + selector, maxNodes="1024", **native_range(seeded))
    assert list(fg.names) == doc["flamebearer"]["names"]
    assert _levels(fg) == doc["flamebearer"]["levels"]
    assert fg.total == doc["flamebearer"]["numTicks"] > 0 and fg.max_self == doc["flamebearer"]["maxSelf"]
    top = native(seeded["url"], "/api/v1/top", TENANT_A, query=CPU + selector, limit="1", **native_range(seeded))
    tree = levels_to_tree(_levels(fg), list(fg.names))
    assert tree["value"] == top["total"]
    leaves: dict[str, int] = {}
    for path, v in _walk(tree).items():
        leaves[path[-1]] = leaves.get(path[-1], 0) + v
    best = max(leaves.items(), key=lambda kv: kv[1])
    assert (best[1], top["functions"][0]["self"]) == (top["functions"][0]["self"], best[1])
    assert top["functions"][0]["name"] in {k for k, v in leaves.items() if v == best[1]}


@pytest.mark.parametrize("codec", CODECS)
def test_select_merge_stacktraces_pprof_and_dot_formats(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    c = client(seeded, codec)
    base = {"profile_typeID": CPU, "label_selector": '{service_name="worker"}', **rng(seeded)}
    fmt = "querier.v1.ProfileFormat"
    res = c.call(f"{Q}/SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", format=pb.enum(fmt, "PROFILE_FORMAT_PPROF"), **base),
                 pb.cls("querier.v1.SelectMergeStacktracesResponse"))
    top = native(seeded["url"], "/api/v1/top", TENANT_A, query=CPU + '{service_name="worker"}', **native_range(seeded))
    assert sum(s.value[0] for s in res.pprof.profile.sample) == top["total"]
    res = c.call(f"{Q}/SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", format=pb.enum(fmt, "PROFILE_FORMAT_DOT"), **base),
                 pb.cls("querier.v1.SelectMergeStacktracesResponse"))
    assert res.dot.startswith("digraph") and '"handle' in res.dot
    r = c.raw(f"{Q}/SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", format=pb.enum(fmt, "PROFILE_FORMAT_TREE"), **base))
    assert (r.status_code, r.json()["code"]) == (501, "unimplemented")


@pytest.mark.parametrize("codec", CODECS)
def test_select_merge_profile_is_pprof_of_the_same_data(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    req = pb("querier.v1.SelectMergeProfileRequest", profile_typeID=CPU, label_selector='{service_name="api"}', **rng(seeded))
    prof = client(seeded, codec).call(f"{Q}/SelectMergeProfile", req, pb.cls("google.v1.Profile"))
    top = native(seeded["url"], "/api/v1/top", TENANT_A, query=CPU + '{service_name="api"}', limit="5", **native_range(seeded))
    st = prof.string_table
    assert [(st[t.type], st[t.unit]) for t in prof.sample_type] == [("cpu", "nanoseconds")]
    assert sum(s.value[0] for s in prof.sample) == top["total"]
    funcs = {f.id: st[f.name] for f in prof.function}
    locs = {loc.id: funcs[loc.line[0].function_id] for loc in prof.location}
    self_by_fn: dict[str, int] = {}
    for s in prof.sample:
        self_by_fn[locs[s.location_id[0]]] = self_by_fn.get(locs[s.location_id[0]], 0) + s.value[0]
    for row in top["functions"]:
        assert self_by_fn.get(row["name"], 0) == row["self"]


@pytest.mark.parametrize("codec", CODECS)
def test_select_series_groups_match_native_timelines(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    c = client(seeded, codec)
    req = pb("querier.v1.SelectSeriesRequest", profile_typeID=CPU, label_selector='{service_name="worker"}',
             group_by=["env"], step=60.0, **rng(seeded))
    res = c.call(f"{Q}/SelectSeries", req, pb.cls("querier.v1.SelectSeriesResponse"))
    got = {tuple((lp.name, lp.value) for lp in s.labels): {p.timestamp: p.value for p in s.points} for s in res.series}
    assert set(got) == {(("env", "dev"),), (("env", "prod"),)}
    for (label,), points in got.items():
        tl = native(seeded["url"], "/api/v1/timeline", TENANT_A, query=CPU + f'{{service_name="worker",env="{label[1]}"}}',
                    step="60", **native_range(seeded))
        want = {t: float(v) for t, v in zip(tl["times_ms"], tl["values"], strict=True) if v}
        assert points == want and len(points) == 2
    limited = c.call(f"{Q}/SelectSeries", pb("querier.v1.SelectSeriesRequest", profile_typeID=CPU, label_selector="{}",
                                            group_by=["env"], step=60.0, limit=1, **rng(seeded)), pb.cls("querier.v1.SelectSeriesResponse"))
    assert [(lp.name, lp.value) for lp in limited.series[0].labels] == [("env", "prod")] and len(limited.series) == 1
    avg = pb.enum("types.v1.TimeSeriesAggregationType", "TIME_SERIES_AGGREGATION_TYPE_AVERAGE")
    one = c.call(f"{Q}/SelectSeries", pb("querier.v1.SelectSeriesRequest", profile_typeID=CPU, label_selector='{service_name="worker"}',
                                        step=3600.0, aggregation=avg, **rng(seeded)), pb.cls("querier.v1.SelectSeriesResponse"))
    total = native(seeded["url"], "/api/v1/top", TENANT_A, query=CPU + '{service_name="worker"}', **native_range(seeded))["total"]
    assert len(one.series) == 1 and list(one.series[0].labels) == []
    assert sum(p.value for p in one.series[0].points) < total  # 4 profiles averaged, not summed


@pytest.mark.parametrize("codec", CODECS)
def test_diff_matches_native_diff(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    side = "querier.v1.SelectMergeStacktracesRequest"
    req = pb("querier.v1.DiffRequest",
             left=pb(side, profile_typeID=CPU, label_selector='{service_name="worker",env="dev"}', **rng(seeded)),
             right=pb(side, profile_typeID=CPU, label_selector='{service_name="worker",env="prod"}', **rng(seeded)))
    fg = client(seeded, codec).call(f"{Q}/Diff", req, pb.cls("querier.v1.DiffResponse")).flamegraph
    doc = native(seeded["url"], "/api/v1/diff", TENANT_A, leftQuery=CPU + '{service_name="worker",env="dev"}',
                 rightQuery=CPU + '{service_name="worker",env="prod"}', leftFrom=str(seeded["start"]), leftUntil=str(seeded["end"]),
                 rightFrom=str(seeded["start"]), rightUntil=str(seeded["end"]))
    assert (fg.leftTicks, fg.rightTicks) == (doc["leftTicks"], doc["rightTicks"])
    assert list(fg.names) == doc["flamebearer"]["names"] and _levels(fg) == doc["flamebearer"]["levels"]
    assert fg.rightTicks > fg.leftTicks > 0


@pytest.mark.parametrize("codec", CODECS)
def test_profile_stats_and_settings_per_tenant(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    a, b = client(seeded, codec), client(seeded, codec, "team-empty")
    stats = a.call(f"{Q}/GetProfileStats", pb("types.v1.GetProfileStatsRequest"), pb.cls("types.v1.GetProfileStatsResponse"))
    assert stats.data_ingested and seeded["start"] < stats.oldest_profile_time <= stats.newest_profile_time < seeded["end"]
    empty = b.call(f"{Q}/GetProfileStats", pb("types.v1.GetProfileStatsRequest"), pb.cls("types.v1.GetProfileStatsResponse"))
    assert not empty.data_ingested
    s = "settings.v1.SettingsService"
    name = f"pluginSettings.{codec}"
    assert [x.name for x in b.call(f"{s}/Get", pb("settings.v1.GetSettingsRequest"), pb.cls("settings.v1.GetSettingsResponse")).settings] == []
    setting = pb("settings.v1.Setting", name=name, value=json.dumps({"maxNodes": 16384}))
    done = a.call(f"{s}/Set", pb("settings.v1.SetSettingsRequest", setting=setting), pb.cls("settings.v1.SetSettingsResponse"))
    assert done.setting.modifiedAt > 0
    got = a.call(f"{s}/Get", pb("settings.v1.GetSettingsRequest"), pb.cls("settings.v1.GetSettingsResponse")).settings
    assert {(x.name, x.value) for x in got} >= {(name, setting.value)}
    assert name not in [x.name for x in b.call(f"{s}/Get", pb("settings.v1.GetSettingsRequest"), pb.cls("settings.v1.GetSettingsResponse")).settings]


@pytest.mark.parametrize("codec", CODECS)
def test_tenants_are_isolated(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    b = client(seeded, codec, TENANT_B)
    values = b.call(f"{Q}/LabelValues", pb("types.v1.LabelValuesRequest", name="service_name", **rng(seeded)),
                    pb.cls("types.v1.LabelValuesResponse")).names
    assert list(values) == ["secret"]
    fg = b.call(f"{Q}/SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", profile_typeID=CPU,
                                                  label_selector='{service_name="worker"}', **rng(seeded)),
                pb.cls("querier.v1.SelectMergeStacktracesResponse")).flamegraph
    assert fg.total == 0
    a_vals = client(seeded, codec).call(f"{Q}/LabelValues", pb("types.v1.LabelValuesRequest", name="service_name", **rng(seeded)),
                                        pb.cls("types.v1.LabelValuesResponse")).names
    assert "secret" not in a_vals


def test_json_accepts_original_names_int64_numbers_and_enum_numbers(seeded: dict[str, Any]) -> None:
    body = {"profile_typeID": CPU, "label_selector": '{service_name="worker"}', "start": seeded["start"],
            "end": str(seeded["end"]), "max_nodes": "64", "format": 1}
    camel = {"profileTypeID": CPU, "labelSelector": '{service_name="worker"}', "start": str(seeded["start"]),
             "end": seeded["end"], "maxNodes": 64, "format": "PROFILE_FORMAT_FLAMEGRAPH", "unknownNewField": True}
    answers = []
    for b in (body, camel):
        r = httpx.post(seeded["url"] + f"/{Q}/SelectMergeStacktraces", json=b, headers={"X-Scope-OrgID": TENANT_A})
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert answers[0] == answers[1]
    fg = answers[0]["flamegraph"]
    assert isinstance(fg["total"], str) and "maxSelf" in fg and all(isinstance(v, str) for v in fg["levels"][0]["values"])


def test_gzip_request_and_response(seeded: dict[str, Any], pb: Protos) -> None:
    req = pb("querier.v1.SelectMergeProfileRequest", profile_typeID=CPU, label_selector='{service_name="api"}', **rng(seeded))
    for header in ("Content-Encoding", "Connect-Content-Encoding"):
        r = httpx.post(seeded["url"] + f"/{Q}/SelectMergeProfile", content=gzip.compress(req.SerializeToString()),
                       headers={"Content-Type": "application/proto", header: "gzip", "Accept-Encoding": "gzip",
                                "X-Scope-OrgID": TENANT_A})
        assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"
        res = pb.cls("google.v1.Profile").FromString(r.content)  # httpx inflated it
        assert len(res.sample) > 0


@pytest.mark.parametrize(("path", "body", "headers", "status", "code"), [
    (f"{Q}/SelectMergeStacktraces", b'{"profileTypeID": "nope"}', {}, 400, "invalid_argument"),
    (f"{Q}/SelectMergeStacktraces", b'{"profileTypeID": "' + CPU.encode() + b'", "labelSelector": "{a=~\\"(\\"}"}', {}, 400, "invalid_argument"),
    (f"{Q}/SelectMergeStacktraces", b'{"profileTypeID": "' + CPU.encode() + b'", "start": "5", "end": "4"}', {}, 400, "invalid_argument"),
    (f"{Q}/SelectMergeStacktraces", b'{"profileTypeID": "' + CPU.encode() + b'", "maxNodes": "-1"}', {}, 400, "invalid_argument"),
    (f"{Q}/SelectSeries", b'{"profileTypeID": "' + CPU.encode() + b'", "step": -1}', {}, 400, "invalid_argument"),
    (f"{Q}/LabelValues", b"{}", {}, 400, "invalid_argument"),
    (f"{Q}/LabelNames", b"{not json", {}, 400, "invalid_argument"),
    (f"{Q}/LabelNames", b"\xff\xff\xff", {"Content-Type": "application/proto"}, 400, "invalid_argument"),
    (f"{Q}/LabelNames", b"{}", {"Connect-Protocol-Version": "2"}, 400, "invalid_argument"),
    (f"{Q}/LabelNames", b"{}", {"Content-Type": "text/plain"}, 415, "unimplemented"),
    (f"{Q}/LabelNames", b"{}", {"Content-Encoding": "br"}, 501, "unimplemented"),
    (f"{Q}/LabelNames", gzip.compress(b" " * (2 << 20)), {"Content-Encoding": "gzip"}, 429, "resource_exhausted"),
    (f"{Q}/NoSuchMethod", b"{}", {}, 404, "unimplemented"),
    (f"{Q}/SelectHeatmap", b"{}", {}, 501, "unimplemented"),
    ("settings.v1.SettingsService/Set", b'{"setting": {"name": ""}}', {}, 400, "invalid_argument"),
])
def test_errors_are_connect_json(seeded: dict[str, Any], path: str, body: bytes, headers: dict[str, str], status: int, code: str) -> None:
    h = {"Content-Type": "application/json", "X-Scope-OrgID": TENANT_A, **headers}
    r = httpx.post(f"{seeded['url']}/{path}", content=body, headers=h)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["code"] == code and doc["message"] and "Traceback" not in doc["message"]


def test_auth_and_tenancy_with_tokens(servers: list[Any], tmp_path: Any, pb: Protos) -> None:
    import base64
    import time

    tokens = {"tokens": {"tok-a": {"tenant": TENANT_A}, "tok-b": {"tenant": TENANT_B},
                         "ro-a": {"tenant": TENANT_A, "scopes": ["read"]}}}
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    (tmp_path / "data").mkdir()
    srv = start_server(servers, (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}",
                       "--auth-file", str(tmp_path / "tokens.json"), tmp=tmp_path)
    seed(srv.url, time.time_ns(), {"Authorization": "Bearer tok-a"}, {"Authorization": "Bearer tok-b"})
    now = time.time_ns() // 1_000_000
    req = pb("types.v1.LabelValuesRequest", name="service_name", start=now - 3_600_000, end=now + 60_000)
    resp = pb.cls("types.v1.LabelValuesResponse")
    for codec in CODECS:
        anon = Connect(srv.url, codec).raw(f"{Q}/LabelValues", req)
        assert (anon.status_code, anon.json()["code"]) == (401, "unauthenticated")
        bad = Connect(srv.url, codec, {"Authorization": "Bearer nope"}).raw(f"{Q}/LabelValues", req)
        assert (bad.status_code, bad.json()["code"]) == (401, "unauthenticated")
        assert list(Connect(srv.url, codec, {"Authorization": "Bearer tok-b"}).call(f"{Q}/LabelValues", req, resp).names) == ["secret"]
        basic = "Basic " + base64.b64encode(b"grafana:tok-a").decode()
        assert list(Connect(srv.url, codec, {"Authorization": basic}).call(f"{Q}/LabelValues", req, resp).names) == ["api", "worker"]
        cross = Connect(srv.url, codec, {"Authorization": "Bearer tok-a", "X-Scope-OrgID": TENANT_B}).raw(f"{Q}/LabelValues", req)
        assert (cross.status_code, cross.json()["code"]) == (403, "permission_denied")
        ro = Connect(srv.url, codec, {"Authorization": "Bearer ro-a"})
        assert ro.call(f"{Q}/LabelValues", req, resp).names
        put = ro.raw("settings.v1.SettingsService/Set", pb("settings.v1.SetSettingsRequest", setting=pb("settings.v1.Setting", name="x", value="1")))
        assert (put.status_code, put.json()["code"]) == (403, "permission_denied")


@pytest.mark.parametrize("codec", CODECS)
def test_call_site_selector_keeps_stacks_through_the_path(seeded: dict[str, Any], pb: Protos, codec: str) -> None:
    c = client(seeded, codec)
    path = pb("types.v1.StackTraceSelector", call_site=[pb("types.v1.Location", name=n) for n in ("main", "handle")])
    req = pb("querier.v1.SelectMergeStacktracesRequest", profile_typeID=CPU, label_selector='{service_name="worker"}',
             stack_trace_selector=path, **rng(seeded))
    fg = c.call(f"{Q}/SelectMergeStacktraces", req, pb.cls("querier.v1.SelectMergeStacktracesResponse")).flamegraph
    top = native(seeded["url"], "/api/v1/top", TENANT_A, query=CPU + '{service_name="worker"}', limit="10", **native_range(seeded))
    handle = next(r for r in top["functions"] if r["name"] == "handle")
    assert fg.total == handle["total"] and "gc" not in fg.names
    pgo = pb("types.v1.StackTraceSelector", go_pgo=pb("types.v1.GoPGO", keep_locations=1))
    r = c.raw(f"{Q}/SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", profile_typeID=CPU, stack_trace_selector=pgo, **rng(seeded)))
    assert (r.status_code, r.json()["code"]) == (501, "unimplemented")
