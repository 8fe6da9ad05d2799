"""Artifacts the platform builds from this repository and serves to its own nodes.

Contract: :func:`fleetprof_wheel` builds the wheel of this repository (``pip wheel --no-deps
--no-build-isolation`` over a copy of the package sources, ``SOURCE_DATE_EPOCH`` fixed so the
same sources give the same bytes) into ``build/artifacts/<sources digest>/``; a second call
with unchanged sources returns the cached wheel without building. :func:`constraints_file`
is the repository's ``constraints.txt`` (it pins every dependency, Ray included).
Each :class:`Artifact` carries its sha256; object keys embed it, so a new build is a new key
and therefore an explicit change of everything that installs it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FILES = ("pyproject.toml", "README.md")
PACKAGE_DIRS = ("fleetprof", "workers")
CACHE_DIR = REPO_ROOT / "build" / "artifacts"
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest date a zip entry can carry
_SKIP_DIRS = {"__pycache__"}
BUILD_OUTPUTS = frozenset({"fleetprof/explorer"})
"""Directories ``make ui`` writes into the package: not sources (the image builds them from ``ui/``)."""
_SKIP_SUFFIXES = (".pyc", ".pyo")


class ArtifactError(RuntimeError):
    """Building an artifact failed (the message carries the build's output)."""


@dataclass(frozen=True)
class Artifact:
    """A local file to upload and the digest nodes verify it against."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    def key(self, prefix: str) -> str:
        """Object key ``<prefix><sha256>/<file name>`` (content-addressed, name kept for pip)."""
        return f"{prefix}{self.sha256}/{self.filename}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_sources(root: Path = REPO_ROOT) -> list[Path]:
    """Files that make up the package (relative to ``root``), sorted; bytecode and build
    outputs (:data:`BUILD_OUTPUTS`, present only where they were built) excluded."""
    out = [Path(name) for name in PACKAGE_FILES]
    for top in PACKAGE_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            rel = Path(dirpath).relative_to(root)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in _SKIP_DIRS and not d.endswith(".egg-info") and str(rel / d) not in BUILD_OUTPUTS
            )
            out.extend(rel / f for f in filenames if not f.endswith(_SKIP_SUFFIXES))
    return sorted(out)


def sources_digest(root: Path = REPO_ROOT) -> str:
    """sha256 over the package sources' relative paths and contents."""
    h = hashlib.sha256()
    for rel in package_sources(root):
        h.update(str(rel).encode() + b"\0")
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def _build(root: Path, out_dir: Path) -> Path:
    """Build the wheel of a copy of ``root``'s package sources into ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="fleetprof-wheel-") as tmp:
        src = Path(tmp) / "src"
        for rel in package_sources(root):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, src / rel)
        dist = Path(tmp) / "dist"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "-q", "-w", str(dist), str(src)]
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wheels = sorted(dist.glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise ArtifactError(f"building the fleetprof wheel failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], out_dir / wheels[0].name))


def fleetprof_wheel(root: Path = REPO_ROOT, cache_dir: Path = CACHE_DIR) -> Artifact:
    """The wheel of ``root`` (built once per sources digest, see module docstring)."""
    slot = cache_dir / sources_digest(root)
    if not slot.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache_dir))
        try:
            _build(root, staging)
            staging.rename(slot)  # atomic: a concurrent render sees a complete slot or none
        except OSError:
            if not slot.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(slot.glob("*.whl"))
    if len(wheels) != 1:
        raise ArtifactError(f"expected one wheel in {slot}, found {len(wheels)}")
    return Artifact(wheels[0], sha256_file(wheels[0]))


def constraints_file(root: Path = REPO_ROOT) -> Artifact:
    """The repository's ``constraints.txt`` (pins of every dependency the nodes install)."""
    path = root / "constraints.txt"
    return Artifact(path, sha256_file(path))
