"""The regression notebook on a window where no version regressed: it says so and runs to
the end (it used to fail with a polars TypeError on a ``None`` version column)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from workers import synth
from workers.analyze import analyze_window, parse_window
from workers.storage_io import open_backends, write_l0

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "regression_investigation.ipynb"
WINDOW = "2026-11-20T10"


def test_regression_notebook_explains_an_empty_result(tmp_path: Path, monkeypatch) -> None:
    surl, iurl = (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"
    store, index = open_backends(surl, iurl)
    w = parse_window(WINDOW)
    prof = {"main;handle;parse": 60_000_000, "main;handle;render": 40_000_000}
    items = [synth.ingest_item({"service_name": "api", "version": v}, synth.CPU, w.start_ms + 60_000 * i,
                               synth.profile_from_stacks(prof, synth.CPU)) for i, v in enumerate(["v1", "v1", "v2", "v2"])]
    write_l0(store, index, "quiet", items, per_segment=10)
    summary = analyze_window(store, index, "quiet", w, flame_graphs=False)
    assert summary["regressions"] == []
    for k, v in {"FLEETPROF_STORAGE": surl, "FLEETPROF_INDEX": iurl, "FLEETPROF_TENANT": "quiet", "FLEETPROF_WINDOW": WINDOW}.items():
        monkeypatch.setenv(k, v)
    for k in ("FLEETPROF_SERVICE", "FLEETPROF_BASE_VERSION", "FLEETPROF_CAND_VERSION"):
        monkeypatch.delenv(k, raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], [o.get("evalue") for o in outputs]
    text = "".join(str(o.get("text", "")) for o in outputs)
    assert "No version regressed in window 2026-11-20T10" in text and "FLEETPROF_BASE_VERSION" in text
