"""Fixtures of tests/telemetry (helpers live in telemetry_support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetprof import telemetry


@pytest.fixture(autouse=True)
def _tracing_off_after() -> Iterator[None]:
    """Every test starts and ends with fleetprof's tracing off."""
    telemetry.shutdown()
    yield
    telemetry.shutdown()
