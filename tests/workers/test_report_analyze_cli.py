"""``python -m workers.analyze`` (``fleetprof analyze``): where it wrote, which executor and
why, and one line plus a non-zero exit on a store without profiles."""

from __future__ import annotations

from pathlib import Path

from workers import synth
from workers.analyze import AUTO_SERIAL_MAX_SAMPLES, WorkSize, choose_executor, main, parse_window
from workers.storage_io import open_backends, write_l0

WINDOW = "2026-11-20T10"


def test_prints_executor_and_report_location(tmp_path: Path, capsys) -> None:
    urls = [(tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"]
    store, index = open_backends(*urls)
    write_l0(store, index, "acme", synth.scenario_items(parse_window(WINDOW).start_ms), per_segment=60)
    assert main(["--window", WINDOW, "--storage", urls[0], "--index", urls[1]]) == 0
    out = capsys.readouterr().out
    assert "on the serial executor (auto: 1 task" in out
    where = f"-> {urls[0]}/analysis/acme/{WINDOW}/report.html"
    assert where in out and (tmp_path / "data" / "analysis" / "acme" / WINDOW / "report.html").is_file()


def test_empty_store_says_so_and_fails(tmp_path: Path, capsys) -> None:
    urls = ["--storage", (tmp_path / "data").as_uri(), "--index", f"sqlite://{tmp_path / 'index.db'}"]
    assert main(["--window", WINDOW, *urls]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nothing to analyse: no profiles") and WINDOW in err[0]
    assert main(["--window", "last-hour", *urls]) == 1  # an empty store is an error, scheduled or not
    assert "no profiles" in capsys.readouterr().err


def test_scheduled_window_without_profiles_in_a_store_with_data_is_no_error(tmp_path: Path, capsys) -> None:
    urls = [(tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"]
    store, index = open_backends(*urls)
    write_l0(store, index, "acme", synth.scenario_items(parse_window(WINDOW).start_ms), per_segment=60)
    assert main(["--window", "last-hour", "--storage", urls[0], "--index", urls[1]]) == 0
    assert "nothing to analyse: no profiles for tenant(s) acme in window(s) " in capsys.readouterr().err


def test_executor_rule() -> None:
    small, big = WorkSize(10, 10**6, 1000), WorkSize(900, 10**9, AUTO_SERIAL_MAX_SAMPLES)
    assert choose_executor("auto", 1, big)[0] == "serial"
    assert choose_executor("auto", 4, small)[0] == "serial"
    assert choose_executor("auto", 4, big)[0] == "ray"
    assert choose_executor("ray", 1, small) == ("ray", "--executor ray")
    assert choose_executor("auto", 1, small, ray_address="ray://head:10001")[0] == "ray"
