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
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

ENV = "NUMBA_CACHE_DIR"


def writable(path: Path) -> bool:
    """True when a file can be created in ``path`` (created if missing), as numba checks."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def runtime_cache_dir(source: Path | None) -> Path:
    """The per-user directory used when ``source`` (None: numba's defaults) cannot be
    written; one directory per source, so an existing one is always a complete copy of it."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    tag = hashlib.blake2b(str(source).encode(), digest_size=4).hexdigest() if source else "empty"
    return Path(tempfile.gettempdir()) / f"fleetprof-numba-{uid}-{tag}"


def seed(source: Path | None, target: Path) -> None:
    """Create ``target`` holding a copy of ``source``'s files (empty when ``source`` is None
    or missing), unless ``target`` already exists."""
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
