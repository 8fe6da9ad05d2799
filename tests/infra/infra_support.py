"""Helpers shared by the infrastructure tests (unique module name: tests/ has no packages)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.mockrun import MockResource, Rendering, render  # noqa: E402

STACKS = ("dev", "staging", "prod")
SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"


@functools.cache
def rendered(stack: str) -> Rendering:
    """Each committed stack is rendered once per test session."""
    return render(stack)


def one(rendering: Rendering, type_: str, name: str) -> MockResource:
    """The single resource of ``type_`` named ``name`` (fails loudly otherwise)."""
    found = [r for r in rendering.of_type(type_) if r.name == name]
    assert len(found) == 1, f"expected one {type_} {name}, found {len(found)}"
    return found[0]
