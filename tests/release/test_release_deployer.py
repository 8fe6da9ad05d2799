"""The Automation API deployer against a stand-in ``pulumi`` command (fake_pulumi/bin)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from release_support import Env, excerpt, release

from fleetprof.release.deployer import IMAGE_KEY, Applied, AutomationDeployer, DeployError
from fleetprof.release.events import EventLog
from fleetprof.release.orchestrator import Orchestrator
from fleetprof.release.pipeline import parse_pipeline

FAKE_ROOT = Path(__file__).parent / "fake_pulumi"


def project(tmp_path: Path, config: dict[str, str]) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Pulumi.yaml").write_text("name: fleetprof\nruntime: python\n")
    (proj / ".fake-pulumi.json").write_text(json.dumps({"stacks": {"dev": {"config": config, "updates": []}}}))
    return proj


def fake_state(proj: Path) -> dict:
    return json.loads((proj / ".fake-pulumi.json").read_text())["stacks"]["dev"]


def test_up_sets_exactly_the_applied_config(tmp_path: Path) -> None:
    proj = project(tmp_path, {"aws:region": "us-east-1", "fleetprof:stale": "1"})
    d = AutomationDeployer(proj, pulumi_root=str(FAKE_ROOT))
    base = d.stack_config("dev")
    assert base == {"aws:region": "us-east-1", "fleetprof:stale": "1"}
    applied = Applied.of(release("v1"), {k: v for k, v in base.items() if k != "fleetprof:stale"})
    assert d.preview("dev", applied).changes == {"update": 1}
    outputs = d.up("dev", applied)
    assert outputs["image"] == release("v1").image
    assert fake_state(proj)["updates"] == [{"aws:region": "us-east-1", IMAGE_KEY: release("v1").image}]


def test_failed_up_is_one_line(tmp_path: Path) -> None:
    proj = project(tmp_path, {"aws:region": "us-east-1"})
    d = AutomationDeployer(proj, pulumi_root=str(FAKE_ROOT))
    bad = Applied.of(release("v1"), {"aws:region": "us-east-1", "fake:failUp": "ECS service did not stabilize"})
    with pytest.raises(DeployError, match="ECS service did not stabilize") as e:
        d.up("dev", bad)
    assert "\n" not in str(e.value)


def test_orchestrator_rolls_back_through_the_pulumi_command(env: Env, tmp_path: Path) -> None:
    proj = project(tmp_path, {"aws:region": "us-east-1", "fake:url": env.url})
    doc = {"state": {"bucket": env.pipeline.state.bucket, "table": env.pipeline.state.table},
           "policy_command": ["{python}", "-c", "pass"],
           "defaults": {"alarms": list(env.pipeline.waves[0].alarms), "bake_s": 0, "min_datapoints": 1},
           "stages": [{"name": "beta", "waves": [{"name": "dev", "stacks": ["dev"]}], "approvals": {"smoke": {}}}]}
    pipeline = parse_pipeline(doc)
    d = AutomationDeployer(proj, pulumi_root=str(FAKE_ROOT))

    def run(version: str, extra: dict[str, str] | None = None) -> tuple[int, EventLog]:
        log = EventLog(f"{version}-run", version, env.clock, tmp_path / f"{version}.json")
        rel = release(version)
        if extra:
            rel = type(rel)(rel.version, rel.image, rel.wheel_sha256, extra)
        return Orchestrator(pipeline, env.state, d, env.clock, log, repo=proj, owner=log.run_id).run(rel).exit_code, log

    code, log = run("v1")
    assert code == 0, excerpt(log)
    code, log = run("v2", {"fake:failUp": "target group unhealthy"})
    print("\n" + excerpt(log))
    assert code == 1
    updates = fake_state(proj)["updates"]
    assert [u[IMAGE_KEY] for u in updates] == [release("v1").image, release("v1").image]  # v1, then v1 re-applied
    assert "fake:failUp" not in updates[-1]  # the recorded config, exactly
