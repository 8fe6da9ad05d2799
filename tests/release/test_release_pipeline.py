"""pipeline.yaml model: the repository's file validates; bad files are one clear error."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from fleetprof.release.pipeline import (
    PipelineError,
    load_pipeline,
    parse_pipeline,
    release_from_dict,
)

REPO = Path(__file__).resolve().parents[2]
STATE = {"bucket": "b", "table": "t"}


def doc(**stage: object) -> dict:
    return {"state": STATE, "stages": [{"name": "beta", "waves": [{"name": "dev", "stacks": ["dev"]}], **stage}]}


def test_repository_pipeline_validates_against_its_stacks() -> None:
    stacks = [p.name.split(".")[1] for p in REPO.glob("Pulumi.*.yaml")]
    p = load_pipeline(REPO / "pipeline.yaml", stacks)
    assert [w.stacks for w in p.waves][0] == ("dev",) and p.waves[-1].promotion == "manual"
    assert p.waves[1].approvals["load"]["min_rate"] > 0


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"approvals": {"canary": {}}}, "unknown workflow 'canary'"),
        ({"promotion": "sometimes"}, "expected automatic or manual"),
        ({"time_windows": [{"days": ["mon"], "start": "10:00", "end": "09:00"}]}, "end must be after start"),
        ({"time_windows": [{"days": ["monday"], "start": "10:00", "end": "11:00"}]}, "days"),
        ({"blackouts": [{"start": "2026-13-01"}]}, "expected YYYY-MM-DD"),
        ({"bake_s": -1}, "bake_s"),
        ({"profile_bake": {"service": "x", "profile_types": ["cpu"]}}, "profile type ids"),
        ({"colour": "blue"}, "unknown key(s) ['colour']"),
    ],
)
def test_bad_settings_name_their_path(stage: dict, message: str) -> None:
    with pytest.raises(PipelineError, match=None) as e:
        parse_pipeline(doc(**stage))
    assert message in str(e.value) and "stages[0]" in str(e.value)


def test_stack_in_two_waves_and_unknown_stack() -> None:
    d = doc()
    d["stages"].append({"name": "gamma", "waves": [{"name": "staging", "stacks": ["dev"]}]})
    with pytest.raises(PipelineError, match="duplicate stack"):
        parse_pipeline(d)
    with pytest.raises(PipelineError, match="unknown stack"):
        parse_pipeline(doc(), known_stacks=["staging"])


def test_windows_and_blackouts() -> None:
    w = parse_pipeline(doc(time_windows=[{"days": ["tue"], "start": "09:00", "end": "16:00", "tz": "Europe/Berlin"}],
                           blackouts=[{"start": "2026-12-24", "end": "2026-12-26"}])).waves[0]
    tue_10_berlin = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # 10:00 in Berlin
    assert w.time_windows[0].allows(tue_10_berlin)
    assert not w.time_windows[0].allows(tue_10_berlin + dt.timedelta(hours=7))
    assert w.blackouts[0].covers(dt.datetime(2026, 12, 25, 12, tzinfo=dt.UTC))


def test_release_manifest_requires_a_digest() -> None:
    with pytest.raises(PipelineError, match="pinned by digest"):
        release_from_dict({"version": "v1", "image": "repo/fleetprof:latest"})
    r = release_from_dict({"version": "v1", "image": "repo/fleetprof@sha256:" + "a" * 64})
    assert r.to_dict()["image"].endswith("a" * 64)


def test_cli_bad_pipeline_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("state: {bucket: b, table: t}\nstages: [{name: beta, waves: [{name: dev, stacks: [nope]}]}]\n")
    done = subprocess.run([sys.executable, "-m", "fleetprof", "release", "validate", "-p", str(bad), "--repo", str(REPO)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: wave dev: unknown stack(s) ['nope']") and "Traceback" not in done.stderr
