"""Helpers shared by the infrastructure tests (unique module name: tests/ has no packages)."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
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


def edit(r: Rendering, type_: str, name: str, change: Callable[[MockResource], MockResource | None]) -> Rendering:
    """``r`` with the resource ``type_``/``name`` changed (or removed when ``change`` returns None)."""
    out = []
    for res in r.resources:
        if res.type == type_ and res.name == name:
            res = change(res)
            if res is None:
                continue
        out.append(res)
    return dataclasses.replace(r, resources=out)
