"""The WAF web ACL's effect on representative requests (components.aws_model.waf), on the
rendered stacks and on broken variants of their web ACL."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from infra_support import rendered

from components.aws_model import waf
from components.aws_model.graph import Graph
from components.edge import INGEST_PATHS
from components.mockrun import Rendering

WAF_STACKS = ("staging", "prod")


def _acl(stack: str) -> dict[str, Any]:
    (acl,) = waf.attached_web_acls(Graph(rendered(stack)))
    return copy.deepcopy(acl.inputs)


def _request(title_start: str) -> waf.Request:
    (found,) = [e.request for e in waf.EXPECTATIONS if e.request.title.startswith(title_start)]
    return found


def _variant(stack: str, change: Callable[[dict[str, Any]], None]) -> Graph:
    """The stack's graph with its web ACL's inputs edited by ``change``."""
    r = rendered(stack)
    resources = []
    for res in r.resources:
        if res.type == waf.WEB_ACL:
            inputs = copy.deepcopy(res.inputs)
            change(inputs)
            res = dataclasses.replace(res, inputs=inputs)
        resources.append(res)
    return Graph(Rendering(r.stack, r.config, resources, r.exports, r.program))


def _rule(acl: dict[str, Any], name: str) -> dict[str, Any]:
    (rule,) = [r for r in acl["rules"] if r["name"] == name]
    return rule


def _without_ingest_scoping(acl: dict[str, Any]) -> None:
    """The web ACL as it was before the ingest paths were exempted: no overrides in the
    common rule set, no label rule."""
    crs = _rule(acl, "AWSManagedRulesCommonRuleSet")["statement"]["managedRuleGroupStatement"]
    crs.pop("ruleActionOverrides")
    acl["rules"] = [r for r in acl["rules"] if "labelMatchStatement" not in str(r["statement"])]


# --- the rendered stacks ---------------------------------------------------------------


@pytest.mark.parametrize("stack", WAF_STACKS)
@pytest.mark.parametrize("expectation", waf.EXPECTATIONS, ids=lambda e: e.request.title)
def test_web_acl_decides_representative_requests(stack, expectation):
    decision = waf.evaluate(_acl(stack), expectation.request)
    assert decision.action == expectation.action, str(decision)


@pytest.mark.parametrize("stack", WAF_STACKS)
def test_blocks_name_the_rule_that_stops_them(stack):
    acl = _acl(stack)
    assert waf.evaluate(acl, _request("POST /pyroscope/render 20 KB")).rule == (
        "crs-body-and-agent-rules-outside-ingest"
    )
    log4j = waf.evaluate(acl, _request("POST /ingest 1.5 KB with a Log4j"))
    assert log4j.rule == "AWSManagedRulesKnownBadInputsRuleSet:Log4JRCE_HEADER"
    flood = waf.evaluate(acl, _request("POST /push.v1.PusherService/Push at 100000"))
    assert flood.rule == "ingest-rate-limit"
    upload = waf.evaluate(acl, _request("POST /ingest 2 MB pprof"))
    assert "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body" in upload.labels
    assert upload.counted == ("SizeRestrictions_BODY",)


@pytest.mark.parametrize("stack", ("dev", *WAF_STACKS))
def test_every_stack_has_no_waf_findings(stack):
    graph = Graph(rendered(stack))
    assert waf.findings(graph) == []
    lines = waf.facts(graph)
    if stack == "dev":
        assert lines == [
            "WAF: no web ACL attached to the ALB (every request reaches the listeners)"
        ]
    else:
        assert "WAF: POST /ingest 2 MB pprof -> ALLOW (counted: SizeRestrictions_BODY)" in lines
        assert len(lines) == len(waf.EXPECTATIONS) + 1
        assert lines[-1] == "WAF logging: every attached web ACL logs to its aws-waf-logs- group"


def test_ingest_paths_are_the_servers_upload_routes(tmp_path):
    """Every POST route of the server (agents' pushes, ``fleetprof push``) and nothing else."""
    from fleetprof.server.app import create_app
    from fleetprof.server.settings import Settings

    app = create_app(
        Settings.load({}, storage=f"file://{tmp_path}/data", index=f"sqlite://{tmp_path}/i.db")
    )
    posts = {path for path, ops in app.openapi()["paths"].items() if "post" in ops}
    fast = set(getattr(app, "fast_posts", {}) or {})
    assert posts | fast == set(INGEST_PATHS)


# --- broken web ACLs -------------------------------------------------------------------


@pytest.mark.parametrize("stack", WAF_STACKS)
def test_unscoped_common_rule_set_blocks_uploads(stack):
    graph = _variant(stack, _without_ingest_scoping)
    (acl,) = waf.attached_web_acls(graph)
    decision = waf.evaluate(acl.inputs, _request("POST /ingest 2 MB pprof"))
    assert (decision.action, decision.rule) == (
        "BLOCK",
        "AWSManagedRulesCommonRuleSet:SizeRestrictions_BODY",
    )
    no_agent = waf.evaluate(acl.inputs, _request("POST /ingest 1.5 KB, no User-Agent"))
    assert no_agent.rule == "AWSManagedRulesCommonRuleSet:NoUserAgent_HEADER"
    problems = waf.findings(graph)
    assert len(problems) == 6, problems  # every upload over 8 KB and the agent without UA
    assert any("POST /ingest 20 MB multipart" in p and "needs ALLOW" in p for p in problems)
    assert any("POST /v1/traces 512 KB" in p and "needs ALLOW" in p for p in problems)


def test_overrides_without_the_label_rule_let_oversized_bodies_through():
    graph = _variant(
        "prod",
        lambda acl: acl.update(
            rules=[
                r for r in acl["rules"] if r["name"] != "crs-body-and-agent-rules-outside-ingest"
            ]
        ),
    )
    problems = waf.findings(graph)
    assert [p.split(": ", 1)[1].split(" ->")[0] for p in problems] == [
        "POST /pyroscope/render 20 KB body (oversized body off the ingest paths)",
        "GET /pyroscope/render without User-Agent (off the ingest paths)",
    ]


def test_label_rule_before_the_group_sees_no_labels():
    def move_first(acl: dict[str, Any]) -> None:
        _rule(acl, "crs-body-and-agent-rules-outside-ingest")["priority"] = 1

    problems = waf.findings(_variant("staging", move_first))
    assert any("POST /pyroscope/render 20 KB" in p for p in problems)


def test_label_rule_with_wrong_label_keys_blocks_nothing():
    def wrong_keys(acl: dict[str, Any]) -> None:
        label_rule = _rule(acl, "crs-body-and-agent-rules-outside-ingest")
        for s in label_rule["statement"]["andStatement"]["statements"][0]["orStatement"][
            "statements"
        ]:
            s["labelMatchStatement"]["key"] = s["labelMatchStatement"]["key"].upper()

    problems = waf.findings(_variant("staging", wrong_keys))
    assert any("POST /pyroscope/render 20 KB" in p for p in problems)


def test_rate_limit_scoped_to_another_path_lets_a_flood_through():
    def other_path(acl: dict[str, Any]) -> None:
        scope = _rule(acl, "ingest-rate-limit")["statement"]["rateBasedStatement"]
        for s in scope["scopeDownStatement"]["orStatement"]["statements"]:
            s["byteMatchStatement"]["searchString"] = (
                "/v1" + s["byteMatchStatement"]["searchString"]
            )

    problems = waf.findings(_variant("prod", other_path))
    assert problems and all("100000 requests" in p for p in problems)


# --- the model itself ------------------------------------------------------------------

_CRS_ONLY = {
    "defaultAction": {"allow": {}},
    "rules": [
        {
            "name": "crs",
            "priority": 1,
            "overrideAction": {"none": {}},
            "statement": {
                "managedRuleGroupStatement": {
                    "vendorName": "AWS",
                    "name": "AWSManagedRulesCommonRuleSet",
                    "ruleActionOverrides": [
                        {"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}
                    ],
                }
            },
        }
    ],
}


def _post(body: bytes, path: str = "/x") -> waf.Request:
    return waf.Request(
        "t", "POST", path, headers={"User-Agent": "t"}, body_size=len(body), body=body
    )


def test_body_rules_see_only_the_first_8_kb():
    hidden = b"a" * (waf.BODY_INSPECTION_LIMIT + 10) + b"<script>alert(1)</script>"
    seen = b"<script>alert(1)</script>" + b"a" * (waf.BODY_INSPECTION_LIMIT + 10)
    assert waf.evaluate(_CRS_ONLY, _post(hidden)).action == "ALLOW"
    assert waf.evaluate(_CRS_ONLY, _post(seen)).rule == "crs:CrossSiteScripting_BODY"


def test_override_action_count_turns_the_groups_block_into_a_count():
    acl = copy.deepcopy(_CRS_ONLY)
    acl["rules"][0]["overrideAction"] = {"count": {}}
    decision = waf.evaluate(acl, _post(b"../../etc/passwd"))
    assert (decision.action, decision.counted) == ("ALLOW", ("crs:GenericLFI_BODY",))
    assert "awswaf:managed:aws:core-rule-set:GenericLFI_Body" in decision.labels


def test_label_match_by_name_and_namespace():
    labels = ["awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"]
    r = _post(b"")
    assert waf.matches(
        {"labelMatchStatement": {"scope": "LABEL", "key": "core-rule-set:SizeRestrictions_Body"}},
        r,
        labels,
    )
    assert waf.matches(
        {"labelMatchStatement": {"scope": "NAMESPACE", "key": "awswaf:managed:aws:"}}, r, labels
    )
    assert not waf.matches(
        {"labelMatchStatement": {"scope": "LABEL", "key": "SizeRestrictions"}}, r, labels
    )


@pytest.mark.parametrize(
    "statement",
    [
        {"geoMatchStatement": {"countryCodes": ["NL"]}},
        {
            "managedRuleGroupStatement": {
                "vendorName": "AWS",
                "name": "AWSManagedRulesBotControlRuleSet",
            }
        },
        {
            "byteMatchStatement": {
                "fieldToMatch": {"body": {}},
                "positionalConstraint": "CONTAINS",
                "searchString": "x",
                "textTransformations": [],
            }
        },
    ],
)
def test_statements_the_model_cannot_judge_fail_loudly(statement):
    acl = {
        "defaultAction": {"allow": {}},
        "rules": [
            {
                "name": "r",
                "priority": 1,
                "action": {"block": {}},
                "overrideAction": {"none": {}},
                "statement": statement,
            }
        ],
    }
    with pytest.raises(waf.UnsupportedStatement):
        waf.evaluate(acl, _post(b""))
