"""Windows of ``python -m workers.analyze``: absolute names and the relative ones schedules use."""

from __future__ import annotations

import datetime as dt

import pytest

from workers.analyze import main, parse_window


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    "text, now, name",
    [
        ("last-hour", "2026-11-21T10:17:03", "2026-11-21T09"),
        ("last-hour", "2026-11-21T10:00:00", "2026-11-21T09"),  # 10:00 has just begun: 09 is complete
        ("last-hour", "2026-11-21T00:30:00", "2026-11-20T23"),
        ("last-day", "2026-11-21T10:17:03", "2026-11-20"),
        ("last-day", "2026-11-21T00:00:00", "2026-11-20"),
        ("last-day", "2026-03-01T05:00:00", "2026-02-28"),
    ],
)
def test_relative_windows_are_the_last_complete_utc_hour_or_day(text, now, name):
    w = parse_window(text, now_ms=ms(now))
    assert w.name == name
    assert w.end_ms <= ms(now) and w == parse_window(name)  # the same window as its absolute name


def test_relative_window_defaults_to_now():
    w = parse_window("last-hour")
    assert w.end_ms <= dt.datetime.now(dt.UTC).timestamp() * 1000 < w.end_ms + 3_600_000


@pytest.mark.parametrize("text", ["1h", "last-week", "2026-11-21T10:00", ""])
def test_unknown_windows_are_rejected(text):
    with pytest.raises(ValueError, match="bad window"):
        parse_window(text)


def test_cli_rejects_the_old_scheduled_window_and_accepts_the_new(tmp_path, capsys):
    urls = ["--storage", f"file://{tmp_path}/data", "--index", f"sqlite://{tmp_path}/index.db", "--serial"]
    assert main(["--window", "1h", *urls]) == 2
    assert "bad window '1h'" in capsys.readouterr().err
    assert main(["--window", "last-hour", *urls]) == 1  # accepted: the store is merely empty
    assert "nothing to analyse" in capsys.readouterr().err
