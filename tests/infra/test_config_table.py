"""The README's configuration table is the one generated from Pulumi.yaml and the stacks."""

from __future__ import annotations

import shutil

from infra_support import ROOT

from components.config_table import DEFAULT_MARK, config_table


def test_readme_carries_the_generated_table():
    assert config_table() in (ROOT / "README.md").read_text()


def test_a_stack_override_shows_in_its_column(tmp_path):
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    row = next(r for r in config_table(tmp_path).splitlines() if r.startswith("| `ingestPushesPerCpuSecond`"))
    assert row.split(" | ")[3:6] == [DEFAULT_MARK] * 3
    staging = tmp_path / "Pulumi.staging.yaml"
    staging.write_text(staging.read_text().replace("config:\n", "config:\n  fleetprof:ingestPushesPerCpuSecond: 4321\n", 1))
    row = next(r for r in config_table(tmp_path).splitlines() if r.startswith("| `ingestPushesPerCpuSecond`"))
    assert row.split(" | ")[3:6] == [DEFAULT_MARK, "4321", DEFAULT_MARK]
