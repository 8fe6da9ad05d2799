"""Durable, atomic object stores for segments.

Contract of every :class:`ObjectStore`:

* ``put(key, data)`` returns only once the whole object is durable, and an object is
  either entirely visible or not at all (no reader ever sees a prefix).
  ``file://``: write a temp file in the destination directory, ``fsync`` it, ``rename``
  it over the key, then ``fsync`` the directory. ``s3://``: one ``PutObject`` (S3 puts
  are atomic) or, above ``multipart_threshold``, a multipart upload that S3 only makes
  visible on completion; boto3 retries with the ``standard`` mode (exponential backoff).
* ``get(key)`` returns the bytes or raises :class:`KeyError`.
* ``delete(key)`` is idempotent (deleting an absent key is not an error).
* ``list(prefix)`` yields keys (relative to the store root) that start with ``prefix``.
* ``ping()`` raises :class:`StoreError` when the store is unreachable.

Keys are ``/``-separated relative paths without ``..`` components.
S3 endpoints come from the standard ``AWS_ENDPOINT_URL`` (boto3 reads it itself), so a
moto server and real AWS need no code change.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse


class StoreError(RuntimeError):
    """The object store failed or is unreachable."""


@runtime_checkable
class ObjectStore(Protocol):
    """See the module docstring for the contract."""

    url: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def ping(self) -> None: ...


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key


class FileStore:
    """Objects as files under ``root`` (``file:///abs/path``)."""

    TMP_PREFIX = ".tmp-"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        created = _mkdirs(path.parent, self.root)
        fd, tmp = tempfile.mkstemp(prefix=self.TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        for d in [path.parent, *created]:
            _fsync_dir(d)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of the object from ``start`` (fewer at its end); ``KeyError`` if absent."""
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root
        # Walk only the deepest directory fully named by the prefix.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = base / head if head else base
        if not start.is_dir():
            return
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(self.TMP_PREFIX):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), base).replace(os.sep, "/")
                if rel.startswith(prefix):
                    yield rel

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StoreError(f"{self.url} is not a writable directory")

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"


def _mkdirs(path: Path, root: Path) -> list[Path]:
    """Create missing directories below ``root``; return the parents whose entries changed."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != root:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return [m.parent for m in missing]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Store:
    """Objects in ``s3://bucket/prefix`` via boto3 (retries: standard mode, 5 attempts)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        multipart_threshold: int = 16 * 1024 * 1024,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.multipart_threshold = multipart_threshold
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            from fleetprof.storage.aws import client

            self._client = client("s3")
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        k = self._key(key)
        if len(data) <= self.multipart_threshold:
            self.client.put_object(Bucket=self.bucket, Key=k, Body=data)
            return
        from boto3.s3.transfer import TransferConfig

        cfg = TransferConfig(multipart_threshold=self.multipart_threshold, multipart_chunksize=8 * 1024 * 1024)
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, k, Config=cfg)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(key) from None
            raise

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of the object from ``start`` (one ranged GET); ``KeyError`` if absent."""
        from botocore.exceptions import ClientError

        if length <= 0:
            return b""
        try:
            rng = f"bytes={start}-{start + length - 1}"
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=rng)["Body"].read()
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(key) from None
            if code == "InvalidRange":
                return b""
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        n = len(self.prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"][n:]

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:  # noqa: BLE001 - any failure means "not ready"
            raise StoreError(f"{self.url} unreachable: {e}") from e

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"


def open_store(url: str) -> ObjectStore:
    """Open ``file:///abs/path`` or ``s3://bucket/prefix``."""
    u = urlparse(url)
    if u.scheme == "file":
        if u.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must be absolute (file:///path): {url!r}")
        path = unquote(u.path)
        if not path.startswith("/"):
            raise ValueError(f"file URL must be absolute: {url!r}")
        return FileStore(path)
    if u.scheme == "s3":
        if not u.netloc:
            raise ValueError(f"s3 URL needs a bucket: {url!r}")
        return S3Store(u.netloc, u.path)
    raise ValueError(f"unsupported storage URL {url!r} (use file:///abs/path or s3://bucket/prefix)")
