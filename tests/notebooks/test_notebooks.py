"""The query notebooks run top to bottom (nbclient) against data this test seeds."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workers import synth
from workers.analyze import analyze_window, parse_window
from workers.storage_io import open_backends, write_l0

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
WINDOW = "2026-11-20T10"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("nb")
    surl, iurl = (root / "data").as_uri(), f"sqlite://{root / 'index.db'}"
    store, index = open_backends(surl, iurl)
    w = parse_window(WINDOW)
    write_l0(store, index, "acme", synth.scenario_items(w.start_ms), per_segment=60)
    analyze_window(store, index, "acme", w, flame_graphs=False)
    return {"FLEETPROF_STORAGE": surl, "FLEETPROF_INDEX": iurl, "FLEETPROF_TENANT": "acme", "FLEETPROF_WINDOW": WINDOW}


def test_at_least_three_notebooks() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"fleet_overview", "service_deep_dive", "regression_investigation"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path, seeded: dict[str, str], monkeypatch, tmp_path) -> None:
    for k, v in seeded.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FLEETPROF_SERVICE", raising=False)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    if path.stem == "regression_investigation":
        assert "api v1 -> v2" in text and "api.compute" in text
    if path.stem == "fleet_overview":
        assert "cache.Put" in text  # leak suspect table
