"""WAF: the Amazon IP reputation list, a rate limit on query paths as well as ingest, and
logging to a KMS-encrypted aws-waf-logs- group that the log delivery service may write."""

from __future__ import annotations

import json

import pytest
from infra_support import one, rendered

from components.aws_model import waf
from components.aws_model.graph import Graph
from components.mockrun import MockResource, Rendering
from policies.offline import evaluate, to_res
from policies.rules import rule_by_name

ACL = "aws:wafv2/webAcl:WebAcl"


def _without(r: Rendering, keep) -> Rendering:
    return Rendering(r.stack, r.config, [x for x in r.resources if keep(x)], r.exports, r.program)


def _acl_without_rule(r: Rendering, rule: str) -> Rendering:
    out = []
    for x in r.resources:
        if x.type == ACL:
            rules = [y for y in x.inputs["rules"] if y["name"] != rule]
            x = MockResource(**{**x.__dict__, "inputs": {**x.inputs, "rules": rules}})
        out.append(x)
    return Rendering(r.stack, r.config, out, r.exports, r.program)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_deployed_stacks_block_bad_reputation_and_query_floods_and_log(stack):
    graph = Graph(rendered(stack))
    assert waf.findings(graph) == []
    lines = waf.facts(graph)
    assert any("IP reputation list -> BLOCK by AWSManagedRulesAmazonIpReputationList:AWSManagedIPReputationList" in x
               for x in lines)
    assert any("query flood) -> BLOCK by query-rate-limit" in x for x in lines)


@pytest.mark.parametrize(
    ("rule", "expectation"),
    [("AWSManagedRulesAmazonIpReputationList", "IP reputation list"), ("query-rate-limit", "query flood")],
)
def test_a_web_acl_without_the_rule_lets_the_request_through(rule, expectation):
    found = waf.findings(Graph(_acl_without_rule(rendered("prod"), rule)))
    assert any(expectation in f and "-> ALLOW" in f for f in found), found


def test_the_ddos_list_only_counts():
    acl = one(rendered("prod"), ACL, "edge-waf").inputs
    request = waf.Request("GET /", "GET", "/pyroscope/render", headers={"user-agent": "x"},
                          source_lists=frozenset({"AWSManagedIPDDoSList"}))
    decision = waf.evaluate(acl, request)
    assert decision.action == "ALLOW" and "edge-waf" not in decision.rule
    assert "AWSManagedIPDDoSList" in decision.counted


def test_logging_goes_to_an_encrypted_retained_group_with_tokens_redacted():
    r = rendered("prod")
    group = one(r, "aws:cloudwatch/logGroup:LogGroup", "edge-waf-logs").inputs
    assert group["name"] == "aws-waf-logs-fleetprof-prod"
    assert group["kmsKeyId"] == one(r, "aws:kms/key:Key", "storage-key").outputs["arn"]
    assert group["retentionInDays"] == r.program["settings"].waf_log_retention_days
    logging = one(r, "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", "edge-waf-logging").inputs
    assert logging["redactedFields"] == [{"singleHeader": {"name": "authorization"}}]
    (s,) = json.loads(one(r, "aws:cloudwatch/logResourcePolicy:LogResourcePolicy", "edge-waf-log-delivery")
                      .inputs["policyDocument"])["Statement"]
    assert s["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_log_delivery_without_its_resource_policy_is_found():
    broken = _without(rendered("prod"), lambda x: x.type != "aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    found = waf.logging_findings(Graph(broken))
    assert found and "may not logs:CreateLogStream, logs:PutLogEvents" in found[0]


def test_a_web_acl_without_logging_is_found_by_the_model_and_the_pack():
    r = rendered("prod")
    broken = _without(r, lambda x: x.type != "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert waf.logging_findings(Graph(broken)) == ["web ACL edge-waf: no logging configuration"]
    rule = rule_by_name("waf-logging")
    assert evaluate(to_res(r.resources), rules=[rule]) == []
    assert [f.message for f in evaluate(to_res(broken.resources), rules=[rule])] == [
        "web ACL edge-waf has no logging configuration"
    ]
