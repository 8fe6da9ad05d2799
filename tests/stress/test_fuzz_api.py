"""The API fuzzer for a long run (``make stress``): rounds of schemathesis cases for every
operation of ``/openapi.json`` plus hypothesis-built Push and ``/ingest`` bodies, each round
with a fresh seed, against one real server on 127.0.0.1 until the duration is spent
(``FLEETPROF_FUZZ_MINUTES``, default 30). Property: no 5xx, every error JSON
``{code, message}``, and the server still ready at the end. The short run of the same
fuzzer is ``tests/server/test_server_fuzz.py``."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fuzzutil import Report, fuzz_rounds, seed_data  # noqa: E402
from serverutil import ServerProc, server_list, start_server  # noqa: E402

pytestmark = pytest.mark.stress
MINUTES = float(os.environ.get("FLEETPROF_FUZZ_MINUTES", "30"))
EXAMPLES = int(os.environ.get("FLEETPROF_FUZZ_EXAMPLES", "100"))


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


@pytest.mark.timeout(int(MINUTES * 60) + 1800)
def test_fuzz_api_for_a_long_time(servers: list[ServerProc], tmp_path: Path) -> None:
    s = start_server(servers, (tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}", tmp=tmp_path)
    seed_data(s.url)
    report = Report()
    t0 = time.monotonic()
    rounds = fuzz_rounds(s.url, EXAMPLES, t0 + MINUTES * 60, report)
    minutes = (time.monotonic() - t0) / 60
    print(f"API fuzzing: {rounds} rounds, {report.requests} requests in {minutes:.1f} min; statuses {sorted(report.statuses.items())}")
    assert not report.failures, f"{len(report.failures)} failures:\n\n" + "\n\n".join(report.failures[:20])
    assert minutes >= MINUTES
    assert httpx.get(s.url + "/readyz", timeout=30).status_code == 200
