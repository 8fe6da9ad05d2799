"""A real orchestrator process killed with SIGKILL in the middle of a bake, and a rerun
that resumes: the stack it had deployed is not deployed again."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from release_support import STACKS, Env, excerpt, release

from fleetprof.release.clock import FakeClock
from fleetprof.release.deployer import LocalDeployer
from fleetprof.release.events import EventLog
from fleetprof.release.orchestrator import Orchestrator
from fleetprof.release.pipeline import load_pipeline
from fleetprof.release.state import StateStore

REPO = Path(__file__).resolve().parents[2]


def wait_for(cond, timeout_s: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_sigkill_mid_bake_then_rerun_resumes(env: Env, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for s in ("dev", "staging"):
        (repo / f"Pulumi.{s}.yaml").write_text("config: {}\n")
    doc = {
        "state": {"bucket": env.pipeline.state.bucket, "table": env.pipeline.state.table, "lock_lease_s": 30},
        "policy_command": ["{python}", "-c", "pass"],
        "defaults": {"alarms": list(env.pipeline.waves[0].alarms), "bake_s": 3600, "poll_s": 0.2, "min_datapoints": 2},
        "stages": [{"name": "beta", "waves": [{"name": "dev", "stacks": ["dev"]}]},
                   {"name": "gamma", "waves": [{"name": "staging", "stacks": ["staging"]}]}],
    }
    pipeline_file = tmp_path / "pipeline.yaml"
    pipeline_file.write_text(yaml.safe_dump(doc))
    (tmp_path / "release.json").write_text(json.dumps(release("v1").to_dict()))
    deployer_file = tmp_path / "deployer.json"
    LocalDeployer({s: {"config": {"aws:region": "us-east-1"}, "outputs": {}} for s in STACKS}, path=deployer_file).save()
    cmd = [sys.executable, "-m", "fleetprof", "release", "run", "-p", str(pipeline_file), "-r", str(tmp_path / "release.json"),
           "--repo", str(repo), "--deployer", f"local:{deployer_file}", "--run-id", "killed-run",
           "--events", str(tmp_path / "killed.json")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "killed.log", "wb"))  # noqa: SIM115
    try:
        wait_for(lambda: proc.poll() is not None or (env.state.stack_state("dev").current or {}).get("datapoints", 0) >= 1)
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    killed = json.loads((tmp_path / "killed.json").read_text())
    print("\nkilled run:\n" + "\n".join(f"{e['seq']:>3} {e['kind']:<20} {e.get('wave', '')}" for e in killed))
    assert killed[-1]["kind"] == "bake.start"
    assert env.state.lock_info("dev").owner == "killed-run"  # a SIGKILL releases nothing
    assert LocalDeployer.load(deployer_file).versions("dev") == ["v1"]

    # the rerun: the killed run's lease has run out, the bake time has passed
    pipeline = load_pipeline(pipeline_file)
    # the same pipeline, polled every 10 min: staging's fresh bake needs few polls under a fake clock
    pipeline = dataclasses.replace(pipeline, waves=tuple(dataclasses.replace(w, poll_s=600) for w in pipeline.waves))
    clock = FakeClock(time.time() + 3700)
    deployer = LocalDeployer.load(deployer_file)
    log = EventLog("rerun", "v1", clock, tmp_path / "rerun.json")
    orch = Orchestrator(pipeline, StateStore(pipeline.state, clock), deployer, clock, log, repo=repo, owner="rerun")
    result = orch.run(release("v1"))
    print("rerun:\n" + excerpt(log))
    assert result.exit_code == 0, excerpt(log)
    assert deployer.versions("dev") == ["v1"]  # not deployed twice
    assert deployer.versions("staging") == ["v1"]
    assert log.kinds()[:4] == ["run.start", "lock.acquired", "wave.resume", "bake.alarms_ok"]
    assert env.state.stack_state("dev").last_good["version"] == "v1"
