"""fleetprof.numba_cache: an unwritable kernel cache is replaced by a writable copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetprof import numba_cache


@pytest.fixture
def tmp_root(monkeypatch, tmp_path) -> Path:
    """A private temporary directory; numba's cache setting is restored afterwards (the
    rest of the session keeps loading its kernels from the real cache)."""
    import numba.core.config

    monkeypatch.setattr(numba.core.config, "CACHE_DIR", numba.core.config.CACHE_DIR)
    monkeypatch.setattr(numba_cache.tempfile, "tempdir", str(tmp_path / "tmp"))
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
