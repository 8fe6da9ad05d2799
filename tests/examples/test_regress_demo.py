"""The issue's demo: py-spy recordings of a small program before/after a deliberate
slowdown; ``fleetprof regress`` must fail naming the slowed function, and pass on two
recordings of the unchanged program.

``score_records`` goes from about a third of the samples to over four fifths (+45 pp or
so); run-to-run noise between two base recordings stays well under the 20 pp threshold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "regress_demo" / "app.py"
PYSPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")

pytestmark = pytest.mark.slow


def record(out: Path, *app_args: str) -> Path:
    assert PYSPY, "py-spy is a dev dependency (pip install py-spy)"
    cmd = [PYSPY, "record", "--format", "raw", "--rate", "250", "--duration", "3", "-o", str(out), "--",
           sys.executable, str(APP), "--seconds", "3", *app_args]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    assert proc.returncode == 0 and out.exists(), proc.stderr.decode()[-2000:]
    return out


def regress(base: Path, cand: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "fleetprof", "regress", str(base), str(cand), "--threshold", "20", "--min-share", "5", "--format", "json"],
        capture_output=True, cwd=REPO, timeout=120,
    )


def test_pyspy_before_after_slowdown(tmp_path: Path):
    base = record(tmp_path / "base.txt")
    slow = record(tmp_path / "slow.txt", "--slow")
    base2 = record(tmp_path / "base2.txt")

    failed = regress(base, slow)
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    flagged = {r["function"] for r in report["regressions"]}
    assert "score_records" in flagged
    assert flagged <= {"score_records", "busy"}  # the slowed function (and its callee's self, if at all)

    passed = regress(base, base2)
    assert passed.returncode == 0, passed.stdout.decode()
    assert json.loads(passed.stdout)["regressions"] == []
