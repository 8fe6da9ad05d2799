"""fleetprof.numba_cache: an unwritable kernel cache is replaced by a writable copy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from fleetprof import numba_cache


@pytest.fixture
def tmp_root(monkeypatch, tmp_path) -> Path:
    """A private temporary directory; numba's cache setting is restored afterwards (the
    rest of the session keeps loading its kernels from the real cache)."""
    import numba.core.config

    monkeypatch.setattr(numba.core.config, "CACHE_DIR", numba.core.config.CACHE_DIR)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path


def test_writable_configured_cache_is_kept(monkeypatch, tmp_root):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_root / "cache"))
    assert numba_cache.ensure_writable_cache() is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_root / "cache")


def test_read_only_cache_is_copied_once(monkeypatch, tmp_root):
    image_cache = tmp_root / "image-cache"
    (image_cache / "model_abc").mkdir(parents=True)
    (image_cache / "model_abc" / "trie._walk-10.py311.nbi").write_bytes(b"index")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(image_cache))
    real = numba_cache.writable
    monkeypatch.setattr(numba_cache, "writable", lambda p: p != image_cache and real(p))

    target = numba_cache.ensure_writable_cache()
    assert target is not None and target.parent == tmp_root / "tmp"
    assert os.environ["NUMBA_CACHE_DIR"] == str(target)
    assert (target / "model_abc" / "trie._walk-10.py311.nbi").read_bytes() == b"index"
    import numba.core.config

    assert numba.core.config.CACHE_DIR == str(target)  # already-imported numba follows

    (target / "model_abc" / "compiled-later.nbc").write_bytes(b"kept")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(image_cache))
    assert numba_cache.ensure_writable_cache() == target  # the same copy, not a fresh one
    assert (target / "model_abc" / "compiled-later.nbc").exists()


def test_nothing_writable_gives_an_empty_private_cache(monkeypatch, tmp_root):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    real = numba_cache.writable
    monkeypatch.setattr(numba_cache, "writable", lambda p: p.name != "__pycache__" and real(p))
    target = numba_cache.ensure_writable_cache(tmp_root / "pkg")
    assert target is not None and target.is_dir() and not any(target.iterdir())
    assert target.name.endswith("-empty")


def test_unwritable_directory_is_detected(tmp_path):
    assert numba_cache.writable(tmp_path / "new")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not numba_cache.writable(blocker / "sub")  # a file where the directory should be


def test_kernels_load_numba_on_first_call_only():
    """Importing kernel modules does not import numba; the first call does, and kernels
    that call (or inline) other deferred kernels, also across modules, still compile."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import numpy as np\n"
        "from fleetprof.model import hashing, trie\n"
        "from fleetprof.formats import pprof_strings, pprof_scan\n"
        "assert 'numba' not in sys.modules, 'numba imported by a kernel module'\n"
        "data = np.frombuffer(b'mainapp.py', dtype=np.uint8)\n"
        "strings = (data, np.array([0, 4]), np.array([4, 10]))\n"
        "got = hashing.frame_ids_utf8(strings, np.array([0]), np.array([1]), np.array([7]))\n"
        "assert int(got[0]) == hashing.frame_id('main', 'app.py', 7), got\n"
        "assert 'numba' in sys.modules\n"
        "assert hashing.frame_ids_utf8.__module__ == 'fleetprof.model.hashing'\n"
        "assert type(hashing.copy_span).__name__ == 'CPUDispatcher', type(hashing.copy_span)\n"
        "assert type(trie.open_table).__name__ == 'LazyKernel'  # until a trie kernel runs\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_lazy_njit_materialises_a_module_namespace():
    def inner(x):
        return x + 1

    kernel = numba_cache.njit(cache=False)(inner)
    assert isinstance(kernel, numba_cache.LazyKernel) and kernel.__name__ == "inner"
    ns = {"k": kernel, "other": 3}
    numba_cache.materialise(ns)
    assert type(ns["k"]).__name__ == "CPUDispatcher" and ns["other"] == 3
    assert kernel(2) == 3 and ns["k"](4) == 5


def test_writable_probe_leaves_nothing_behind(tmp_path):
    target = tmp_path / "new" / "cache"
    assert numba_cache.writable(target)
    assert target.is_dir() and list(target.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not numba_cache.writable(blocker / "cache")
