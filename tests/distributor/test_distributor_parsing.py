"""Ingest parsing without a server: time syntax, legacy names, Connect push of the
captured pyroscope-io 1.4 request, legacy/native profile typing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleetprof.distributor.common import IngestConfig
from fleetprof.distributor.legacy import parse_ingest_params, parse_legacy
from fleetprof.distributor.legacy_name import NameError_, parse_legacy_name, split_app
from fleetprof.distributor.native import parse_native
from fleetprof.distributor.push import parse_push
from fleetprof.distributor.timeparse import TimeParseError, parse_time_ms
from fleetprof.server.errors import ApiError

DATA = Path(__file__).resolve().parents[1] / "formats" / "data"
NOW = 1_700_000_000_000
CFG = IngestConfig()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1700000000", NOW),
        ("1700000000123", NOW + 123),
        ("1700000000123456", NOW + 123),
        ("1700000000123456789", NOW + 123),
        ("now", NOW),
        ("now-1h", NOW - 3_600_000),
        ("now-15m", NOW - 900_000),
        ("now-30s", NOW - 30_000),
        ("now-7d", NOW - 7 * 86_400_000),
        ("", 42),
        (None, 42),
    ],
)
def test_time_syntax(text: str | None, want: int) -> None:
    assert parse_time_ms(text, default_ms=42, now=NOW) == want


@pytest.mark.parametrize("text", ["yesterday", "now+1h", "-5", "1e9", "now-1y"])
def test_bad_time(text: str) -> None:
    with pytest.raises(TimeParseError):
        parse_time_ms(text, default_ms=0, now=NOW)


def test_legacy_name() -> None:
    assert parse_legacy_name("app.cpu{env=prod, region = eu}") == ("app.cpu", {"env": "prod", "region": "eu"})
    assert parse_legacy_name("my.app.cpu") == ("my.app.cpu", {})
    assert split_app("my.app.cpu") == ("my.app", "cpu")
    assert split_app("my.app") == ("my.app", None)
    assert split_app("svc.alloc_space") == ("svc", "alloc_space")
    with pytest.raises(NameError_):
        parse_legacy_name("app.cpu{broken}")
    with pytest.raises(NameError_):
        parse_legacy_name("")


def test_ingest_params_defaults_and_errors() -> None:
    p = parse_ingest_params({"name": "a.cpu"}, NOW)
    assert (p["app"], p["suffix"], p["format"], p["sample_rate"], p["until_ms"]) == ("a", "cpu", "folded", 100, NOW)
    for bad in ({}, {"name": "a", "format": "tree"}, {"name": "a", "sampleRate": "x"}, {"name": "a", "from": "soon"}):
        with pytest.raises(ApiError) as e:
            parse_ingest_params(bad, NOW)
        assert e.value.status == 400


def test_captured_pyroscope_io_push() -> None:
    body = (DATA / "pyroscope_io_1.4_push.body.gz").read_bytes()
    from fleetprof.server.limits import gunzip_capped

    items = parse_push(gunzip_capped(body, 1 << 20), "application/proto", CFG, time.time_ns() // 1_000_000)
    assert items
    for it in items:
        assert it.profile_type == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        assert "__name__" not in it.labels and it.labels["service_name"]
        assert it.labels["otel.scope.name"] == "com.grafana.pyroscope/python"
        assert len(it.profile.sample_types) == 1


def test_push_content_type_is_checked() -> None:
    with pytest.raises(ApiError) as e:
        parse_push(b"", "text/plain", CFG, NOW)
    assert e.value.status == 415


def test_legacy_folded_counts_become_cpu_nanoseconds() -> None:
    items = parse_legacy(b"main;a 3\nmain;b 2\n", None, {"name": "svc.cpu{env=x}", "from": "1700000000", "sampleRate": "50"}, CFG, NOW)
    (it,) = items
    assert it.profile_type == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    assert it.labels == {"env": "x", "service_name": "svc"}
    assert it.time_ms == NOW
    assert it.profile.totals() == [5 * 20_000_000]


def test_legacy_non_cpu_suffix_keeps_counts() -> None:
    (it,) = parse_legacy(b"main;alloc 7\n", None, {"name": "svc.alloc_objects", "units": "objects"}, CFG, NOW)
    assert it.profile_type == "memory:alloc_objects:count:space:bytes"
    assert it.profile.totals() == [7]


def test_native_requires_service_and_infers_name() -> None:
    with pytest.raises(ApiError):
        parse_native(b"main;a 1\n", {}, CFG, NOW)
    (it,) = parse_native(b"main;a 1\n", {"service_name": "s", "team": "t", "time": "1700000000"}, CFG, NOW)
    assert it.labels == {"service_name": "s", "team": "t"}
    assert it.profile_type == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    assert it.time_ms == NOW and it.profile.totals() == [10_000_000]
