"""A writable numba kernel cache in read-only deployments.

Contract: :func:`ensure_writable_cache` runs before any module with compiled kernels is
imported (``fleetprof/__init__.py`` calls it). numba refuses to import a ``cache=True``
function when none of its cache locations is writable (``NUMBA_CACHE_DIR``, the
``__pycache__`` beside the module, the user's cache directory), which is the normal state
of a container with a read-only root file system, an unprivileged user and no home.

- ``NUMBA_CACHE_DIR`` set and writable, or the package directory writable: nothing changes.
- ``NUMBA_CACHE_DIR`` set but read-only (an image that compiled its kernels at build time):
  its files are copied once into ``<tmp>/fleetprof-numba-<uid>-<source tag>`` and
  ``NUMBA_CACHE_DIR`` points there. The index files record their sources' stamps, not their own location, so
  the copied kernels load without compiling.
- Neither writable: ``NUMBA_CACHE_DIR`` points at an empty ``<tmp>/fleetprof-numba-<uid>-empty``;
  kernels compile on first use.

The copy is made in a fresh directory and renamed into place, so concurrent processes
never see a half-copied cache. When the environment is already usable nothing changes
(the check creates and removes one temporary file, as numba's own check does).

:func:`njit` is ``numba.njit`` deferred to the first call: importing a module of kernels
does not import numba (about 0.2 s of every process start), so commands whose path calls
no kernel never load it. On the first call of any kernel of a module, every deferred
kernel named in that module's globals (its own and those it imported) is replaced by its
numba dispatcher, so kernels calling or inlining each other compile exactly as they
would under ``numba.njit``; the cache files are the same (same function, same lines).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "NUMBA_CACHE_DIR"


def writable(path: Path) -> bool:
    """True when a file can be created in ``path`` (created if missing), as numba checks:
    a uniquely named probe file is created and removed."""
    probe = path / f".fleetprof-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return True


def runtime_cache_dir(source: Path | None) -> Path:
    """The per-user directory used when ``source`` (None: numba's defaults) cannot be
    written; one directory per source, so an existing one is always a complete copy of it."""
    import hashlib
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else 0
    tag = hashlib.blake2b(str(source).encode(), digest_size=4).hexdigest() if source else "empty"
    return Path(tempfile.gettempdir()) / f"fleetprof-numba-{uid}-{tag}"


def seed(source: Path | None, target: Path) -> None:
    """Create ``target`` holding a copy of ``source``'s files (empty when ``source`` is None
    or missing), unless ``target`` already exists."""
    import shutil
    import tempfile

    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        if source is not None and source.is_dir():
            shutil.copytree(source, staging, dirs_exist_ok=True)
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            raise


def ensure_writable_cache(package_dir: Path | None = None) -> Path | None:
    """Point ``NUMBA_CACHE_DIR`` at a writable cache when the configured one is not.

    Returns the directory it switched to, or None when nothing had to change.
    """
    configured = os.environ.get(ENV)
    if configured:
        source = Path(configured)
        if writable(source):
            return None
    else:
        source = None
        if writable((package_dir or Path(__file__).resolve().parent) / "__pycache__"):
            return None
    target = runtime_cache_dir(source)
    seed(source, target)
    os.environ[ENV] = str(target)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba already imported: it read the variable at import
        config.CACHE_DIR = str(target)
    return target


_MATERIALISE = threading.RLock()


class LazyKernel:
    """``numba.njit(**options)(fn)``, built (and numba imported) on first use; any
    attribute other than the wrapped function's metadata is the dispatcher's."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = fn
        self.options = options
        self._dispatcher: Any = None
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def dispatcher(self) -> Any:
        """The numba dispatcher (created once; the module's other kernels with it)."""
        if self._dispatcher is None:
            with _MATERIALISE:
                if self._dispatcher is None:
                    from numba import njit as numba_njit

                    self._dispatcher = numba_njit(**self.options)(self.py_func)
                    materialise(self.py_func.__globals__)
        return self._dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.dispatcher()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dispatcher(), name)


def materialise(namespace: dict[str, Any]) -> None:
    """Replace every :class:`LazyKernel` in ``namespace`` by its dispatcher."""
    with _MATERIALISE:
        for key, value in list(namespace.items()):
            if isinstance(value, LazyKernel):
                namespace[key] = value.dispatcher()


def njit(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``numba.njit`` deferred to first use (see the module docstring); used as
    ``@njit`` or ``@njit(cache=True, ...)``."""
    if fn is not None:
        return LazyKernel(fn, options)
    return lambda f: LazyKernel(f, options)
