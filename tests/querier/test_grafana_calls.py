"""The calls Grafana's Pyroscope data source (Go backend, connect-go client, binary
protobuf) and the Profiles Drilldown app (browser, JSON) make, with their headers and
fields, against a real server; their answers converted the way Grafana converts them."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from google.protobuf import json_format
from querier_support import CPU, TENANT_A, Protos, native
from test_querier_connect import levels_to_tree

Q = "querier.v1.QuerierService"
CONNECT_GO = {
    "Content-Type": "application/proto",
    "Connect-Protocol-Version": "1",
    "Connect-Timeout-Ms": "30000",
    "Accept-Encoding": "gzip",
    "User-Agent": "connect-go/1.16.2 (go1.22.5)",
}


def grafana_call(url: str, procedure: str, req: Any, resp_cls: Any, extra: dict[str, str]) -> Any:
    """One connect-go unary call as the data source's backend makes it."""
    r = httpx.post(f"{url}/{Q}/{procedure}", content=req.SerializeToString(), headers={**CONNECT_GO, **extra})
    assert r.status_code == 200, (procedure, r.text)
    assert r.headers["content-type"] == "application/proto"
    out = resp_cls()
    out.ParseFromString(r.content)
    return out


def get_units(profile_type_id: str) -> str:
    """Grafana's ``getUnits``."""
    unit = profile_type_id.split(":")[2]
    return {"nanoseconds": "ns", "count": "short"}.get(unit, unit)


def test_grafana_datasource_explore_flow(seeded: dict[str, Any], pb: Protos) -> None:
    url, start, end = seeded["url"], seeded["start"], seeded["end"]
    # the data source's HTTP settings: basic auth (ignored without a token file) and the tenant header
    extra = {"Authorization": "Basic " + base64.b64encode(b"grafana:anything").decode(), "X-Scope-OrgID": TENANT_A}
    # CheckHealth and the profile type picker
    types = grafana_call(url, "ProfileTypes", pb("querier.v1.ProfileTypesRequest", start=start, end=end),
                         pb.cls("querier.v1.ProfileTypesResponse"), extra)
    picker = [{"id": t.ID, "label": t.name + " - " + t.sample_type} for t in types.profile_types]
    assert {"id": CPU, "label": "process_cpu - cpu"} in picker
    # label autocomplete: LabelNames/LabelValues with the editor's selector as the one matcher
    names = grafana_call(url, "LabelNames", pb("types.v1.LabelNamesRequest", matchers=["{}"], start=start, end=end),
                         pb.cls("types.v1.LabelNamesResponse"), extra).names
    assert {"service_name", "env"} <= {n for n in names if not n.startswith("__")}
    values = grafana_call(url, "LabelValues", pb("types.v1.LabelValuesRequest", name="service_name", matchers=["{}"], start=start, end=end),
                          pb.cls("types.v1.LabelValuesResponse"), extra).names
    assert list(values) == ["api", "worker"]
    # query type "both": SelectSeries (step = max(interval, minStep 15 s), exemplars off) ...
    selector = '{service_name="worker"}'
    series = grafana_call(url, "SelectSeries", pb("querier.v1.SelectSeriesRequest", profile_typeID=CPU, label_selector=selector,
                                                   start=start, end=end, step=15.0, group_by=[],
                                                   exemplar_type=pb.enum("types.v1.ExemplarType", "EXEMPLAR_TYPE_NONE")),
                          pb.cls("querier.v1.SelectSeriesResponse"), extra)
    tl = native(url, "/api/v1/timeline", TENANT_A, query=CPU + selector, step="15", **{"from": str(start), "until": str(end)})
    assert len(series.series) == 1
    assert {p.timestamp: p.value for p in series.series[0].points} == {t: float(v) for t, v in zip(tl["times_ms"], tl["values"], strict=True) if v}
    # ... and SelectMergeStacktraces with the query's maxNodes, turned into Grafana's nested-set tree
    fg = grafana_call(url, "SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", profile_typeID=CPU,
                                                         label_selector=selector, start=start, end=end, max_nodes=16384),
                      pb.cls("querier.v1.SelectMergeStacktracesResponse"), extra).flamegraph
    assert get_units(CPU) == "ns"
    tree = levels_to_tree([list(lv.values) for lv in fg.levels], list(fg.names))
    top = native(url, "/api/v1/top", TENANT_A, query=CPU + selector, **{"from": str(start), "until": str(end)})
    assert tree["name"] == "total" and tree["value"] == fg.total == top["total"]
    main = tree["children"][0]
    assert main["name"] == "main" and {c["name"] for c in main["children"]} == {"handle", "gc"}
    handle = next(c for c in main["children"] if c["name"] == "handle")
    assert handle["value"] == sum(c["value"] for c in handle["children"])
    # a time range without data: an empty flame graph, not an error
    empty = grafana_call(url, "SelectMergeStacktraces", pb("querier.v1.SelectMergeStacktracesRequest", profile_typeID=CPU,
                                                            label_selector=selector, start=1_000, end=2_000),
                         pb.cls("querier.v1.SelectMergeStacktracesResponse"), extra).flamegraph
    assert empty.total == 0


def test_drilldown_app_json_calls(seeded: dict[str, Any], pb: Protos) -> None:
    """The Profiles Drilldown app's browser calls (JSON over Connect, camelCase, int64 as strings)."""
    url, start, end = seeded["url"], str(seeded["start"]), str(seeded["end"])
    h = {"Content-Type": "application/json", "Connect-Protocol-Version": "1", "X-Scope-OrgID": TENANT_A}

    def post(path: str, body: dict[str, Any]) -> Any:
        r = httpx.post(f"{url}/{path}", json=body, headers=h)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    assert post("settings.v1.SettingsService/Get", {}).get("settings", []) is not None
    series = post(f"{Q}/Series", {"matchers": ["{}"], "labelNames": ["service_name", "__profile_type__"], "start": start, "end": end})
    pairs = {tuple(lp["value"] for lp in ls["labels"]) for ls in series["labelsSet"]}
    assert (CPU, "worker") in pairs
    ts = post(f"{Q}/SelectSeries", {"profileTypeID": CPU, "labelSelector": "{}", "start": start, "end": end,
                                    "step": 60, "groupBy": ["service_name"], "limit": "4"})
    msg = json_format.ParseDict(ts, pb("querier.v1.SelectSeriesResponse"))
    assert sorted(lp.value for s in msg.series for lp in s.labels) == ["api", "worker"]
    stats = post(f"{Q}/GetProfileStats", {})
    assert stats["dataIngested"] is True and int(stats["oldestProfileTime"]) > 0
