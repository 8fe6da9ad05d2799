"""``fleetprof release`` commands as a user runs them (subprocesses on the moto server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from release_support import STACKS, Env, pipeline_doc, release

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "fleetprof", "release", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_manifest_run_approve_status(env: Env, tmp_path: Path) -> None:
    for s in STACKS:
        (tmp_path / f"Pulumi.{s}.yaml").write_text("config: {}\n")
    doc = pipeline_doc(env.pipeline.state.bucket, env.pipeline.state.table, env.url)
    doc["defaults"].update(alarms=list(env.pipeline.waves[0].alarms), bake_s=0, min_datapoints=1)
    doc["stages"] = [doc["stages"][0], {"name": "prod", "promotion": "manual", "waves": [{"name": "prod-1", "stacks": ["prod-use1"]}]}]
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "dep.json").write_text(json.dumps({"stacks": {s: {"config": {}, "outputs": {}} for s in STACKS}}))
    wheel = tmp_path / "fleetprof-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    done = cli("manifest", "--version", "v1", "--image", release("v1").image, "--wheel", str(wheel), "-o", "release.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "release.json").read_text())["wheel_sha256"] == __import__("hashlib").sha256(b"wheel").hexdigest()
    run = ("run", "-r", "release.json", "--deployer", f"local:{tmp_path / 'dep.json'}", "--events", "events.json")
    done = cli(*run, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "waiting" in done.stderr and "fleetprof release v1" in done.stderr  # the summary table
    assert cli("approve", "prod-1", "v1", "--by", "oncall", cwd=tmp_path).returncode == 0
    done = cli(*run, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    events = json.loads((tmp_path / "events.json").read_text())
    assert events[-1]["detail"]["outcomes"] == {"dev": "skipped", "prod-1": "promoted"}
    done = cli("status", cwd=tmp_path)
    assert done.returncode == 0 and "prod-use1" in done.stdout and "v1" in done.stdout
    bad = cli("approve", "nope", "v1", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no wave named 'nope'")
