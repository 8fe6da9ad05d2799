"""``POST /ingest?format=jfr`` on a real server: the Pyroscope Java agent's uploads (raw,
gzipped, multipart with a labels snapshot) become one series per profile type."""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import ServerProc, folded_of, server_list, start_server  # noqa: E402

from fleetprof.formats.jfr import decode_jfr_profiles  # noqa: E402
from fleetprof.formats.proto import jfr_labels_pb2  # noqa: E402

JFR = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "jfr"
KAFKA = JFR / "cortex-dev-01__kafka-0__cpu_lock0_alloc0__0.jfr.gz"
TYPES = {
    "process_cpu:cpu:nanoseconds:cpu:nanoseconds": ("cpu", 0),
    "memory:alloc_in_new_tlab_objects:count:space:bytes": ("alloc_in_new_tlab", 0),
    "memory:alloc_in_new_tlab_bytes:bytes:space:bytes": ("alloc_in_new_tlab", 1),
    "memory:alloc_outside_tlab_objects:count:space:bytes": ("alloc_outside_tlab", 0),
    "memory:alloc_outside_tlab_bytes:bytes:space:bytes": ("alloc_outside_tlab", 1),
    "mutex:contentions:count:mutex:count": ("lock", 0),
    "mutex:delay:nanoseconds:mutex:count": ("lock", 1),
    "block:contentions:count:block:count": ("park", 0),
    "block:delay:nanoseconds:block:count": ("park", 1),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("jfr-ingest")
    for servers in server_list():
        yield start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.1", tmp=tmp)


def _params(app: str, **extra: str) -> dict[str, str]:
    now = int(time.time())
    return {"name": f"{app}{{env=prod}}", "format": "jfr", "from": str(now - 10), "until": str(now), "sampleRate": "100", "spyName": "javaspy", **extra}


def test_every_profile_type_is_stored_with_the_app_labels(server: ServerProc) -> None:
    data = KAFKA.read_bytes()
    r = httpx.post(server.url + "/ingest", params=_params("kafka"), content=data, headers={"content-type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 200, r.text
    expected = {p.kind: p.profile for p in decode_jfr_profiles(data).profiles}
    with httpx.Client(base_url=server.url, timeout=60) as h:
        for ptype, (kind, column) in TYPES.items():
            got = folded_of(h, ptype + '{service_name="kafka",env="prod",jfr_event="cpu"}')
            assert sum(got.values()) == expected[kind].totals()[column], ptype


def test_raw_recording_and_multipart_with_labels(server: ServerProc) -> None:
    """The multipart form as the Java agent sends it (the snapshot's sample labels are
    decoded as in ``tests/formats/test_jfr.py``)."""
    data = (JFR / "dump1.jfr.gz").read_bytes()
    raw = gzip.decompress(data)
    r = httpx.post(server.url + "/ingest", params=_params("plainapp"), content=raw, timeout=60)
    assert r.status_code == 200, r.text
    snap = jfr_labels_pb2.LabelsSnapshot()
    snap.strings.update({1: b"route", 2: b"/checkout"})
    snap.contexts[1].labels[1] = 2
    files = {"jfr": ("jfr", data, "application/octet-stream"), "labels": ("labels", gzip.compress(snap.SerializeToString()), "application/octet-stream")}
    r = httpx.post(server.url + "/ingest", params=_params("labelledapp"), files=files, timeout=60)
    assert r.status_code == 200, r.text
    cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    total = decode_jfr_profiles(data).profiles[0].profile.totals()[0]
    with httpx.Client(base_url=server.url, timeout=60) as h:
        assert sum(folded_of(h, cpu + '{service_name="plainapp"}').values()) == total
        assert sum(folded_of(h, cpu + '{service_name="labelledapp"}').values()) == total


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "jfr: "),
        ("not-jfr", "no FLR magic"),
        ("empty", "empty JFR"),
        ("no-jfr-part", "no 'jfr' part"),
        ("bad-labels", "LabelsSnapshot"),
    ],
)
def test_bad_uploads_are_400_json(server: ServerProc, case: str, message: str) -> None:
    raw = gzip.decompress((JFR / "dump1.jfr.gz").read_bytes())
    kw: dict[str, object] = {
        "truncated": {"content": raw[: len(raw) // 2]},
        "not-jfr": {"content": b"main;work 1\n"},
        "empty": {"content": b""},
        "no-jfr-part": {"files": {"labels": ("labels", b"", "application/octet-stream")}},
        "bad-labels": {"files": {"jfr": ("jfr", raw, "application/octet-stream"), "labels": ("labels", b"\xff\xff\xff", "application/octet-stream")}},
    }[case]
    r = httpx.post(server.url + "/ingest", params=_params("badapp"), timeout=60, **kw)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) >= {"code", "message"} and message in body["message"]
