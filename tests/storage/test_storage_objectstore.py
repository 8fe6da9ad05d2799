"""Object store contract on both backends."""

from __future__ import annotations

import os

import pytest

from fleetprof.storage import FileStore, open_store


@pytest.fixture
def store(backend):
    return open_store(backend[0])


def test_put_get_list_delete(store) -> None:
    store.ping()
    store.put("segments/a/L0/x.fps", b"hello")
    store.put("segments/b/L0/y.fps", b"world" * 1000)
    store.put("other/z", b"")
    assert store.get("segments/a/L0/x.fps") == b"hello"
    assert store.get("segments/b/L0/y.fps") == b"world" * 1000
    assert sorted(store.list("segments/")) == ["segments/a/L0/x.fps", "segments/b/L0/y.fps"]
    assert sorted(store.list()) == ["other/z", "segments/a/L0/x.fps", "segments/b/L0/y.fps"]
    store.put("segments/a/L0/x.fps", b"replaced")
    assert store.get("segments/a/L0/x.fps") == b"replaced"
    store.delete("segments/a/L0/x.fps")
    store.delete("segments/a/L0/x.fps")  # idempotent
    with pytest.raises(KeyError):
        store.get("segments/a/L0/x.fps")
    assert list(store.list("segments/a/")) == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_keys_rejected(store, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_file_put_failure_leaves_nothing(tmp_path, monkeypatch) -> None:
    store = FileStore(tmp_path)

    def boom(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        store.put("segments/t/x.fps", b"data")
    monkeypatch.undo()
    assert list(store.list()) == []
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no temp file left behind


def test_s3_multipart(s3_store_url: str) -> None:
    store = open_store(s3_store_url)
    store.multipart_threshold = 5 * 1024 * 1024  # type: ignore[attr-defined]
    data = os.urandom(11 * 1024 * 1024)
    store.put("big/object", data)
    assert store.get("big/object") == data


def test_open_store_urls(tmp_path) -> None:
    assert isinstance(open_store(tmp_path.as_uri()), FileStore)
    for bad in ("file://relative/x", "s3://", "gs://bucket/x", "/no/scheme"):
        with pytest.raises(ValueError):
            open_store(bad)
