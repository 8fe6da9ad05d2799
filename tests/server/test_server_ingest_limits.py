"""Ingest limits that bound a request's cost, checked before the expensive work.

* Decompression: one budget per request over every gzip layer (body, raw profiles,
  multipart parts), a compression-ratio cap, a sample cap; a request outgrowing the
  ungated size needs a decode-gate slot (429 with ``Retry-After`` when none is free) while
  small pushes never need one.
* Order: the tenant's rate limit is checked before the body is read and the series count
  of a push before any profile is decoded (a spy on the decoders proves they never ran).
* Times: out-of-range ``from``/``until``/``time`` and pushed ``time_nanos`` are 400s, and
  a bad request sent with good ones of the same tenant never fails them (real server).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serverutil import (
    CPU_TYPE,
    PUSH,
    PUSH_HEADERS,
    folded_of,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)

import fleetprof.formats.detect as detect_mod
import fleetprof.formats.pprof as pprof_mod
import fleetprof.formats.pushrequest as pushrequest_mod
from fleetprof.distributor.common import IngestConfig
from fleetprof.formats.proto import push_pb2
from fleetprof.server.app import create_app
from fleetprof.server.errors import ApiError
from fleetprof.server.gate import DecodeGate
from fleetprof.server.limits import InflateBudget, NeedsGate
from fleetprof.server.settings import Settings

MIB = 1024 * 1024


def _client(tmp_path: Path, **overrides: object) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir(exist_ok=True)
    settings = Settings.load(env={}, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}", flush_max_age_s=0.05, **overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _objects(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the profile decoders called (wherever the ingest path looks them up)."""
    calls: list[str] = []
    for mod, name in ((pprof_mod, "decode_pprof_stacks"), (pprof_mod, "decode_pprof"), (pushrequest_mod, "decode_pprof_stacks"),
                      (pushrequest_mod, "decode_pprof"), (detect_mod, "decode")):
        real = getattr(mod, name)

        def spy(*args: object, _real: object = real, _name: str = name, **kw: object) -> object:
            calls.append(_name)
            return _real(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(mod, name, spy)
    return calls


def _ok_push(c: TestClient, service: str = "svc", headers: dict[str, str] | None = None) -> httpx.Response:
    body = push_body(service, pprof_bytes([["main", "work"]], [30_000_000]))
    return c.post(PUSH, content=body, headers={**PUSH_HEADERS, **(headers or {})})


def _many_series(n: int) -> bytes:
    req = push_pb2.PushRequest()
    raw = pprof_bytes([["a"]], [1])
    for i in range(n):
        s = req.series.add()
        s.labels.add(name="service_name", value=f"s{i}")
        s.samples.add(raw_profile=raw)
    return req.SerializeToString()


def _gzip_stream(chunk: bytes, total: int) -> bytes:
    """gzip of ``chunk`` repeated up to ``total`` bytes, never holding the plain text."""
    z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [z.compress(chunk) for _ in range(total // len(chunk))]
    return b"".join(out) + z.flush()


def _folded(lines: int, width: int = 8) -> bytes:
    """``lines`` distinct folded stacks (gzip shrinks them about tenfold, not a hundredfold)."""
    return b"".join(b"main;m%d;f%x;g%0*d 1\n" % (i % 97, i, width, i * 7919 % 10**width) for i in range(lines))


# ---- decompression budget, ratio cap, sample cap ---------------------------------------


def test_budget_counts_every_gzip_layer_ratio_and_ungated_share() -> None:
    b = InflateBudget(limit=100_000, max_ratio=10, ratio_floor=1000)
    assert b.inflate(gzip.compress(b"x" * 900)) == b"x" * 900  # under the floor: any ratio
    assert b.inflate(b"plain") == b"plain" and b.used == 900  # plain slices of a counted body
    with pytest.raises(ApiError) as e:
        b.inflate(gzip.compress(b"y" * 50_000))  # ratio ≫ 10
    assert e.value.status == 413 and "times its" in e.value.message
    layers = InflateBudget(limit=15_000)
    layers.inflate(gzip.compress(_folded(300)))
    with pytest.raises(ApiError) as e:
        layers.inflate(gzip.compress(_folded(400)))  # each below the limit, together above
    assert e.value.status == 413 and "15000-byte limit" in e.value.message
    small = InflateBudget(limit=10**6, ungated=5_000)
    with pytest.raises(NeedsGate):
        small.inflate(gzip.compress(b"z" * 6_000))
    with pytest.raises(NeedsGate):
        InflateBudget(limit=10**6, ungated=5_000).add(5_001)


def test_defaults_bound_a_request() -> None:
    s = Settings.load(env={})
    assert s.max_decompressed_bytes <= 16 * MIB and s.max_compression_ratio <= 100
    assert s.large_decode_slots >= 1 and s.large_decode_bytes <= 256 * 1024
    cfg = IngestConfig.from_settings(s)
    assert cfg.decoder_limits().max_samples == s.max_samples_per_request


def test_high_ratio_gzip_is_413_before_any_decoder(tmp_path: Path, decoder_calls: list[str]) -> None:
    """The issue's shape, scaled down: a small gzip body inflating to many MB of folded text."""
    body = _gzip_stream(b"main;a;b;c 1\n" * 1000, 4 * MIB)
    assert len(body) < 40_000
    for c in _client(tmp_path):
        decoder_calls.clear()  # the server's start-up warm-up decodes a profile
        for headers in ({"content-encoding": "gzip"}, {}):  # Content-Encoding, or gzip inside the body
            r = c.post("/ingest", params={"name": "app.cpu"}, content=body, headers=headers)
            assert r.status_code == 413 and r.json()["code"] == "resource_exhausted", r.text
            assert "times its" in r.json()["message"]
        assert decoder_calls == [] and _objects(tmp_path) == []


def test_decompressed_cap_is_413_before_any_decoder(tmp_path: Path, decoder_calls: list[str]) -> None:
    text = _folded(1_200_000)
    assert len(text) > 16 * MIB
    body = gzip.compress(text, 1)
    assert len(text) < 100 * len(body)  # under the ratio cap: the size cap refuses it
    for c in _client(tmp_path):
        decoder_calls.clear()
        r = c.post("/api/v1/ingest", params={"service_name": "s"}, content=body)
        assert r.status_code == 413 and "limit" in r.json()["message"], r.text
        assert decoder_calls == []


def test_raw_profiles_of_a_push_share_one_budget(tmp_path: Path) -> None:
    req = push_pb2.PushRequest()
    for i in range(3):
        s = req.series.add()
        s.labels.add(name="service_name", value=f"s{i}")
        big = pprof_bytes([["main", f"f{k}" * 40] for k in range(120)], [1] * 120)
        s.samples.add(raw_profile=big)
    one = len(gzip.decompress(req.series[0].samples[0].raw_profile))
    for c in _client(tmp_path, max_decompressed_bytes=len(req.SerializeToString()) + 2 * one):
        r = c.post(PUSH, content=req.SerializeToString(), headers={"content-type": "application/proto"})
        assert r.status_code == 413 and "limit" in r.json()["message"], r.text
        assert _objects(tmp_path) == []


def test_samples_per_request_limit_is_400(tmp_path: Path) -> None:
    for c in _client(tmp_path, max_samples_per_request=100):
        r = c.post("/ingest", params={"name": "app.cpu"}, content=_folded(101))
        assert r.status_code == 400 and "limit" in r.json()["message"], r.text
        assert c.post("/ingest", params={"name": "app.cpu"}, content=_folded(100)).status_code == 200
        req = push_pb2.PushRequest()
        for i in range(3):
            s = req.series.add()
            s.labels.add(name="service_name", value=f"s{i}")
            s.samples.add(raw_profile=pprof_bytes([["main", f"f{k}"] for k in range(40)], [1] * 40))
        r = c.post(PUSH, content=req.SerializeToString(), headers={"content-type": "application/proto"})
        assert r.status_code == 400 and "120 samples" in r.json()["message"], r.text


def test_frames_per_request_limit_is_400(tmp_path: Path) -> None:
    for c in _client(tmp_path, max_frames_per_request=100):
        req = push_pb2.PushRequest()
        for i in range(3):
            s = req.series.add()
            s.labels.add(name="service_name", value=f"s{i}")
            s.samples.add(raw_profile=pprof_bytes([["main", f"f{k}"] for k in range(20)], [1] * 20))
        r = c.post(PUSH, content=req.SerializeToString(), headers={"content-type": "application/proto"})
        assert r.status_code == 400 and "120 stack frames" in r.json()["message"], r.text
        r = c.post("/ingest", params={"name": "app.cpu"}, content=_folded(60))
        assert r.status_code == 400 and "stack frames" in r.json()["message"], r.text
        assert _objects(tmp_path) == []
        assert c.post("/ingest", params={"name": "app.cpu"}, content=_folded(20)).status_code == 200


# ---- the decode gate -------------------------------------------------------------------


def test_gate_is_non_blocking_and_counts_slots() -> None:
    g = DecodeGate(1, 1000, retry_after_s=3)
    with g.slot():
        with pytest.raises(ApiError) as e, g.slot():
            pass
        assert e.value.status == 429 and e.value.headers == {"Retry-After": "3"}
    with g.slot():
        assert g.busy == 1
    assert g.busy == 0


def test_full_gate_refuses_large_uploads_and_never_small_pushes(tmp_path: Path) -> None:
    small_text = _folded(100)
    inflating = gzip.compress(b"main;a;b 1\n" * 20_000)  # a small body decompressing past the ungated size
    large = _folded(20_000)
    for c in _client(tmp_path, large_decode_slots=1, large_decode_bytes=64 * 1024):
        assert len(inflating) < 64 * 1024 < len(large) and len(gzip.decompress(inflating)) > 64 * 1024
        gate = c.app.state.fleetprof.gate  # type: ignore[attr-defined]
        with gate.slot():  # a big upload is being decoded
            for body in (large, inflating):
                r = c.post("/ingest", params={"name": "big.cpu"}, content=body)
                assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
                assert r.json()["code"] == "resource_exhausted"
            r = c.post(PUSH, content=push_body("svc", pprof_bytes([["main", "a"]], [1])), headers=PUSH_HEADERS)
            assert r.status_code == 200, r.text
            assert c.post("/ingest", params={"name": "small.cpu"}, content=small_text).status_code == 200
        for body in (large, inflating):  # slot free again
            assert c.post("/ingest", params={"name": "big.cpu"}, content=body).status_code == 200
        assert gate.busy == 0


# ---- cheap limits first ----------------------------------------------------------------


def test_series_limit_is_checked_before_any_profile_is_decoded(tmp_path: Path, decoder_calls: list[str]) -> None:
    for c in _client(tmp_path, max_series_per_request=3):
        decoder_calls.clear()
        r = c.post(PUSH, content=_many_series(50), headers={"content-type": "application/proto"})
        assert r.status_code == 400 and "50 profiles" in r.json()["message"], r.text
        assert decoder_calls == []
        r = c.post(PUSH, content=_many_series(3), headers={"content-type": "application/proto"})
        assert r.status_code == 200 and len(decoder_calls) == 3


def test_rate_limit_is_checked_before_the_body_is_decoded(tmp_path: Path, decoder_calls: list[str]) -> None:
    for c in _client(tmp_path, ingest_rate=0.001, ingest_burst=1):
        assert _ok_push(c).status_code == 200
        assert c.post("/ingest", params={"name": "app.cpu"}, content=b"main;a 1\n", headers={"X-Scope-OrgID": "t2"}).status_code == 200
        decoder_calls.clear()
        r = _ok_push(c)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["code"] == "resource_exhausted"
        r = c.post("/ingest", params={"name": "app.cpu"}, content=b"main;a 1\n", headers={"X-Scope-OrgID": "t2"})
        assert r.status_code == 429
        assert decoder_calls == []


def test_a_push_larger_than_the_burst_is_accepted_once(tmp_path: Path) -> None:
    """The bucket is charged after decoding and may go into debt: a push of more profiles
    than the burst is accepted (never refused forever) and the next one waits."""
    for c in _client(tmp_path, ingest_rate=0.001, ingest_burst=2):
        r = c.post(PUSH, content=_many_series(5), headers={"content-type": "application/proto"})
        assert r.status_code == 200, r.text
        assert _ok_push(c).status_code == 429


# ---- times -----------------------------------------------------------------------------

FUTURE_S = int(time.time()) + 3 * 86_400
BAD_TIMES = [
    ("/ingest", {"name": "app.cpu", "from": "9999999999999999999999999"}),
    ("/ingest", {"name": "app.cpu", "until": "9" * 5000}),
    ("/ingest", {"name": "app.cpu", "from": str(FUTURE_S)}),
    ("/ingest", {"name": "app.cpu", "from": "now-" + "9" * 400 + "d"}),
    ("/ingest", {"name": "app.cpu", "from": "now-100000000d"}),
    ("/api/v1/ingest", {"service_name": "s", "time": "9999999999999999999999999"}),
    ("/api/v1/ingest", {"service_name": "s", "time": str(FUTURE_S)}),
]


@pytest.mark.parametrize(("path", "params"), BAD_TIMES)
def test_out_of_range_times_are_400(tmp_path: Path, path: str, params: dict[str, str], decoder_calls: list[str]) -> None:
    for c in _client(tmp_path):
        r = c.post(path, params=params, content=b"main;a 1\n")
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
        assert "time" in r.json()["message"]
        assert _objects(tmp_path) == []


@pytest.mark.parametrize("time_ns", [(FUTURE_S) * 10**9, -(10**15), 2**63 - 1])
def test_out_of_range_pushed_time_nanos_is_400(tmp_path: Path, time_ns: int) -> None:
    for c in _client(tmp_path):
        body = push_body("svc", pprof_bytes([["main", "a"]], [5], time_ns=time_ns))
        r = c.post(PUSH, content=body, headers=PUSH_HEADERS)
        assert r.status_code == 400 and "time_nanos" in r.json()["message"], r.text
        r = c.post("/ingest", params={"name": "app.cpu", "format": "pprof"}, content=pprof_bytes([["main", "a"]], [5], time_ns=time_ns))
        assert r.status_code == 400 and "time_nanos" in r.json()["message"], r.text
        assert _objects(tmp_path) == []


@pytest.fixture
def servers() -> Iterator[list]:
    yield from server_list()


def test_bad_time_never_fails_the_good_requests_of_its_batch(tmp_path: Path, servers: list) -> None:
    """Six concurrent requests of one tenant (one flush batch): the bad one is a 400, the
    five good ones are acked and their data is queryable."""
    srv = start_server(servers, (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}", tmp=tmp_path,
                       env={"FLEETPROF_FLUSH_MAX_AGE_S": "1"})
    headers = {"X-Scope-OrgID": "acme"}
    start = threading.Barrier(6)
    now_s = str(int(time.time()))

    def send(i: int) -> httpx.Response:
        params = {"name": "batch.cpu", "from": "9999999999999999999999999" if i == 0 else now_s}
        start.wait(10)
        return httpx.post(srv.url + "/ingest", params=params, content=f"main;f{i} {i}\n".encode(), headers=headers, timeout=30)

    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(send, range(6)))
    assert got[0].status_code == 400 and got[0].json()["code"] == "invalid_argument", got[0].text
    assert [r.status_code for r in got[1:]] == [200] * 5, [r.text for r in got]
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        stored = folded_of(client, CPU_TYPE + '{service_name="batch"}', tenant="acme")
    assert stored == {f"main;f{i}": i * 10_000_000 for i in range(1, 6)}
