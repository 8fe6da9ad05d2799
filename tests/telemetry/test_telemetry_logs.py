"""fleetprof.telemetry.logs: export failures are logged once per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from fleetprof.telemetry.logs import EXPORT_LOGGERS, RateLimit, install


def test_one_record_per_interval_then_the_count_of_dropped_ones(caplog: pytest.LogCaptureFixture) -> None:
    lg = logging.getLogger("fleetprof.test.ratelimit")
    f = RateLimit(interval_s=3600)
    lg.addFilter(f)
    try:
        with caplog.at_level(logging.WARNING, logger=lg.name):
            for i in range(100):
                lg.warning("export failed %d", i)
            assert [r.getMessage() for r in caplog.records] == ["export failed 0"]
            f.interval_s, f._next = 0.0, 0.0
            lg.warning("export failed again")
        assert caplog.records[-1].getMessage() == "export failed again (99 similar span export messages suppressed)"
    finally:
        lg.removeFilter(f)


def test_install_puts_one_filter_on_each_exporter_logger() -> None:
    install()
    install()
    for name in EXPORT_LOGGERS:
        assert sum(isinstance(f, RateLimit) for f in logging.getLogger(name).filters) == 1
