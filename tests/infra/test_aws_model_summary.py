"""The summary ``make preview`` prints of what AWS would do, and its problem list."""

from __future__ import annotations

import dataclasses
import json

import pytest
from infra_support import STACKS, rendered

from components.aws_model.summary import problems, summary_lines

SECTIONS = ("== images ==", "== container ==", "== task ==", "== Ray nodes ==", "== reachability ==", "== key grants ==", "== WAF ==", "== log deliveries ==")


@pytest.mark.parametrize("name", STACKS)
def test_every_stack_summarised_without_problems(name):
    lines = summary_lines(rendered(name))
    assert [line for line in lines if line.startswith("==")] == list(SECTIONS)
    assert any("ALB -> tasks tcp/4040" in line and line.endswith("open") for line in lines)
    assert problems(rendered(name)) == []


def test_a_broken_stack_lists_its_problems():
    r = rendered("staging")
    out = []
    for res in r.resources:
        if res.type == "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule":
            continue  # the ALB's only way to its targets
        if res.type == "aws:ecs/taskDefinition:TaskDefinition":
            defs = json.loads(res.inputs["containerDefinitions"])
            defs[0]["mountPoints"] = []
            res = dataclasses.replace(res, inputs={**res.inputs, "containerDefinitions": json.dumps(defs)})
        out.append(res)
    found = problems(dataclasses.replace(r, resources=out))
    assert any(p.startswith("reachability: path ALB -> tasks tcp/4040") for p in found), found
    assert any(p.startswith("container ingest-task/fleetprof: read-only root") for p in found), found
