"""Golden snapshots of the preview tree per stack.

Every infrastructure change shows up as a reviewable diff of
``tests/infra/snapshots/<stack>.txt``. Regenerate deliberately with
``FLEETPROF_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/infra -k snapshot``.
"""

from __future__ import annotations

import os

import pulumi
import pytest
from infra_support import SNAPSHOT_DIR, STACKS, rendered

from components.preview import tree_lines


@pytest.mark.parametrize("name", STACKS)
def test_preview_snapshot(name):
    r = rendered(name)
    text = "\n".join(tree_lines(r)) + "\n"
    path = SNAPSHOT_DIR / f"{name}.txt"
    if os.environ.get("FLEETPROF_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing snapshot {path.name}; run with FLEETPROF_UPDATE_SNAPSHOTS=1"
    expected = path.read_text()
    assert text == expected, f"{name} infrastructure changed; review the diff and regenerate the snapshot"
    assert f"stack {name}: {len(r.resources)} resources" in expected.splitlines()[0]

    @pulumi.runtime.test
    def exports_resolve():
        return r.program["edge"].url.apply(lambda u: None if u == r.exports["url"] else pytest.fail("url export drifted"))

    exports_resolve()


def test_rendering_is_deterministic():
    from components.mockrun import render

    again = render("staging")
    assert tree_lines(again) == tree_lines(rendered("staging"))
    assert again.exports == rendered("staging").exports
