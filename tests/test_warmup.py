"""The warm-up runs every kernel once and is a no-op afterwards; a fresh process with
NUMBA_CACHE_DIR set to an empty directory fills it (what the service image does at build)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fleetprof.warmup import _tiny_pprof, warm_up


def test_warm_up_is_idempotent_and_decodes_a_real_profile():
    from fleetprof.formats.pprof import decode_pprof

    warm_up()
    assert warm_up() == 0.0
    prof = decode_pprof(_tiny_pprof())
    assert int(prof.samples["v0"].sum()) == 20 and set(prof.frames["name"]) == {"main", "work"}


def test_module_fills_an_empty_numba_cache_dir(tmp_path: Path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "fleetprof.warmup"], env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "numba kernels ready" in out.stdout
    assert any(p.suffix in (".nbi", ".nbc") for p in tmp_path.rglob("*"))
