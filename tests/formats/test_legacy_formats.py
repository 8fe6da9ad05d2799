"""Inputs fleetprof does not read are refused by name, never silently misread: legacy pprof
text profiles, goroutine dumps, other JSON profile formats, OTLP profiles, and JFR
recordings sent as another format. Checked through the CLI (exit 2, one line) and a real
server's ``/ingest`` (400 JSON)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import ServerProc, server_list, start_server  # noqa: E402

from fleetprof.formats.detect import decode, detect_format, encode
from fleetprof.formats.errors import ProfileFormatError

REPO = Path(__file__).resolve().parents[2]
JFR = REPO / ".." / "shared" / "fixtures" / "jfr" / "dump1.jfr.gz"

# Small legacy texts written from the documented formats (google/pprof legacy parsers, Go's
# runtime/pprof debug=1 writers, Google's contentionz/threadz pages).
HEAP = b"""heap profile: 3: 80935293 [12: 90000000] @ heap/1048576
1: 80935000 [4: 89000000] @ 0x4a3b2c 0x4a3c00 0x43f1e0
# 0x4a3b2c main.alloc+0x2c /src/main.go:12
2: 293 [8: 1000000] @ 0x4a3b2c 0x43f1e0
"""
CONTENTIONZ = b"""--- contentionz 1 ---
cycles/second = 3000000000
sampling period = 100
ms since reset = 2345
   1000    5 @ 0x1 0x2 0x3
"""
THREADZ = b"""--- threadz 1 ---

--- Thread 7f0 (name: main/123) stack: ---
  PC: 0x4a3b2c 0x4a3c00
"""
THREADCREATE = b"""threadcreate profile: total 3
1 @ 0x43f1e0 0x46c2a1
#\t0x43f1e0\truntime.newm+0x40\t/go/src/runtime/proc.go:2100
2 @
"""
GO_MUTEX = b"""--- mutex:
cycles/second=2994000000
sampling period=1
1000 2 @ 0x4a3b2c 0x4a3c00
"""
GO_CONTENTION = b"""--- contention:
cycles/second=2994000000
2000 3 @ 0x4a3b2c 0x43f1e0
"""
GOROUTINES = b"""goroutine profile: total 2
1 @ 0x43f1e0 0x46c2a1
"""
GOROUTINE_DUMP = b"""goroutine 1 [running]:
main.main()
\t/src/main.go:12 +0x1d
"""
LEGACY = {
    "heap": (HEAP, "legacy pprof heap profile"),
    "contentionz": (CONTENTIONZ, "contention/mutex profile"),
    "threadz": (THREADZ, "thread profile"),
    "threadcreate": (THREADCREATE, "'threadcreate' profile"),
    "go-mutex": (GO_MUTEX, "contention/mutex profile"),
    "go-contention": (GO_CONTENTION, "contention/mutex profile"),
    "goroutine": (GOROUTINES, "'goroutine' profile"),
    "goroutine-dump": (GOROUTINE_DUMP, "goroutine dump"),
}


def _otlp() -> bytes:
    req = profiles_service_pb2.ExportProfilesServiceRequest()
    rp = req.resource_profiles.add()
    kv = rp.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "checkout"
    rp.scope_profiles.add()
    return req.SerializeToString()


def _flamebearer() -> bytes:
    return encode(decode(b"main;work 5\n"), "flamebearer")


OTHERS = {
    "otlp-proto": (_otlp(), "OTLP profiles request"),
    "otlp-json": (b'{"resourceProfiles": [{"resource": {}}]}', "OTLP profiles request in JSON"),
    "flamebearer": (_flamebearer(), "flamebearer JSON"),
    "push-json": (b'{"series": [{"labels": [{"name": "__name__", "value": "cpu"}]}]}', "PushRequest in JSON"),
    "cpuprofile": (b'{"nodes": [{"id": 1, "callFrame": {}}], "startTime": 0}', ".cpuprofile"),
    "json-array": (b'[{"ph": "X", "name": "a"}]', "JSON array"),
    "gperftools": (bytes(8) + b"\x03" + bytes(7) + bytes(8) + b"\x10\x27" + bytes(6) + bytes(8), "gperftools binary CPU profile"),
}
REFUSED = {**LEGACY, **OTHERS}


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.parametrize("gz", [False, True])
def test_detection_names_the_input(name: str, gz: bool) -> None:
    data, what = REFUSED[name]
    with pytest.raises(ProfileFormatError, match="input looks like") as e:
        detect_format(gzip.compress(data) if gz else data)
    assert what in str(e.value)


@pytest.mark.parametrize("name", sorted(LEGACY))
@pytest.mark.parametrize("fmt", ["folded", "lines"])
def test_explicit_text_format_refuses_legacy_text(name: str, fmt: str) -> None:
    data, what = LEGACY[name]
    with pytest.raises(ProfileFormatError, match=what.replace("(", r"\(").replace(")", r"\)")):
        decode(data, fmt)


def test_explicit_formats_refuse_jfr_and_binary() -> None:
    jfr = JFR.read_bytes()
    for fmt in ("folded", "lines", "pprof", "speedscope", "pushrequest"):
        with pytest.raises(ProfileFormatError, match="JFR recording"):
            decode(jfr, fmt)
    with pytest.raises(ProfileFormatError, match="flamebearer"):
        decode(_flamebearer(), "speedscope")
    pprof = encode(decode(b"main;work 5\n"), "pprof")
    with pytest.raises(ProfileFormatError, match="pprof data, not folded"):
        decode(pprof, "folded")


def test_folded_frames_in_braces_are_not_json() -> None:
    assert detect_format(b"{closure};main 5\n{main} 2\n") == "folded"
    assert decode(b"{closure};main 5\n").totals() == [5]


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "fleetprof", *args], capture_output=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize("name", ["heap", "contentionz", "threadz", "threadcreate", "go-mutex", "otlp-proto", "flamebearer"])
@pytest.mark.parametrize("command", ["top", "convert"])
def test_cli_refuses_with_one_line(tmp_path: Path, name: str, command: str) -> None:
    data, what = REFUSED[name]
    src = tmp_path / "input.prof"
    src.write_bytes(data)
    args = [command, str(src)] + (["-o", str(tmp_path / "out.pb.gz")] if command == "convert" else [])
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and what in lines[0]
    assert not (tmp_path / "out.pb.gz").exists()


def test_cli_reads_jfr(tmp_path: Path) -> None:
    raw = tmp_path / "app.jfr"
    raw.write_bytes(gzip.decompress(JFR.read_bytes()))
    for path in (raw, JFR):
        proc = _cli("top", "-n", "3", str(path))
        assert proc.returncode == 0, proc.stderr
        assert b"cpu:nanoseconds" in proc.stdout
    proc = _cli("convert", str(raw), "-o", str(tmp_path / "app.folded"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "app.folded").read_text().strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("legacy-formats")
    for servers in server_list():
        yield start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.1", tmp=tmp)


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.parametrize("fmt", [None, "folded", "lines"])
def test_ingest_refuses_with_400_json(server: ServerProc, name: str, fmt: str | None) -> None:
    data, what = REFUSED[name]
    params = {"name": "legacyapp.cpu", **({"format": fmt} if fmt else {})}
    r = httpx.post(server.url + "/ingest", params=params, content=data, timeout=30)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) >= {"code", "message"} and "input looks like" in body["message"]


def test_ingest_refuses_jfr_without_format_jfr(server: ServerProc) -> None:
    for fmt in (None, "pprof", "lines"):
        params = {"name": "javaapp", **({"format": fmt} if fmt else {})}
        r = httpx.post(server.url + "/ingest", params=params, content=JFR.read_bytes(), timeout=30)
        assert r.status_code == 400, r.text
        assert "JFR recording" in r.json()["message"]
