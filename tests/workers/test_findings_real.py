"""Recommendations on REAL profiles: py-spy recordings of small programs made here, the JFR
recordings and the Go pprof fixtures in ../shared/fixtures. Each test asserts the full set
of findings (what fires and that nothing else does) and that the evidence names the
classified module, not just a bare function name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from fleetprof.formats.detect import decode
from fleetprof.formats.folded import decode_folded
from fleetprof.model import ValueType, select_type
from workers import analysis, synth
from workers.dataset import from_items

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "data" / "findings_workload.py"
FIXTURES = HERE.parents[1] / ".." / "shared" / "fixtures"
PYSPY = Path(sys.executable).parent / "py-spy"
T0 = 1_795_132_800_000
RATE = 200


def record(out: Path, parts: list[str], *, native: bool, seconds: int = 3) -> Path:
    cmd = [str(PYSPY), "record", "--format", "raw", "--rate", str(RATE), "--duration", str(seconds), "-o", str(out),
           *(["--native"] if native else []), "--", sys.executable, str(WORKLOAD), str(seconds), *parts]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and out.exists(), f"py-spy failed: {res.stdout}\n{res.stderr}"
    return out


def analyse_items(items: list, window_ms: int = 60_000) -> analysis.AnalysisResult:
    return analysis.analyze_dataset(from_items(items), None, tenant="t", window="w", previous_window="p",
                                    start_ms=T0, end_ms=T0 + window_ms)


def folded_result(path: Path) -> analysis.AnalysisResult:
    p = decode_folded(path.read_bytes(), sample_type=ValueType("cpu", "nanoseconds"), sample_rate=RATE)
    return analyse_items([synth.ingest_item({"service_name": "prog"}, synth.CPU, T0, p)])


def fired(r: analysis.AnalysisResult) -> set[str]:
    return set(r.tables["recommendations"]["rule_id"].to_list())


def rec(r: analysis.AnalysisResult, rule_id: str) -> dict:
    return r.tables["recommendations"].filter(pl.col("rule_id") == rule_id).row(0, named=True)


@pytest.fixture(scope="module")
def pyspy_python(tmp_path_factory) -> analysis.AnalysisResult:
    out = tmp_path_factory.mktemp("pyspy") / "python.txt"
    return folded_result(record(out, ["json", "regex_compile", "logging", "gzip", "deepcopy", "reflection"], native=False))


@pytest.fixture(scope="module")
def pyspy_native(tmp_path_factory) -> analysis.AnalysisResult:
    out = tmp_path_factory.mktemp("pyspy") / "native.txt"
    return folded_result(record(out, ["hashing", "zlib", "pickle", "exceptions", "sqlite"], native=True))


def test_pyspy_python_frames(pyspy_python) -> None:
    """Bare names with the module in the file field (``dumps``, ``compile``, ``deepcopy``)."""
    r = pyspy_python
    assert fired(r) == {"json-serialization", "regex-compile", "logging", "compression", "deepcopy-pickling", "reflection"}
    assert "[json.encoder]" in rec(r, "json-serialization")["top_functions"]
    assert rec(r, "regex-compile")["top_module"] in ("re._parser", "re._compiler")
    assert rec(r, "compression")["packages"] == "gzip"
    # six parts of equal time: each about a sixth of the CPU, and the dollar impact follows
    for row in r.tables["recommendations"].iter_rows(named=True):
        assert 0.08 < row["share"] < 0.30, row
    svc = r.tables["cost_services"].row(0, named=True)
    j = rec(r, "json-serialization")
    assert j["usd_month"] == pytest.approx(j["share"] * svc["usd_month"])
    assert j["flamegraph_url"].startswith("/?service=prog&type=process_cpu") and f"fn={j['top_function']}" in j["flamegraph_url"].replace("+", " ")


def test_pyspy_native_frames(pyspy_native) -> None:
    """py-spy --native: C libraries (libcrypto, libz, libsqlite3) and CPython's C modules."""
    r = pyspy_native
    assert fired(r) == {"hashing", "compression", "deepcopy-pickling", "exceptions", "orm-db-driver"}
    h = rec(r, "hashing")
    assert "libcrypto" in h["packages"] and "SHA256" in h["top_functions"]
    assert "libsqlite" in rec(r, "orm-db-driver")["packages"]
    assert "libz" in rec(r, "compression")["packages"]
    # unsymbolized libz addresses are grouped under the library, as pprof's function view does
    fns = set(r.tables["top_functions"].filter(pl.col("scope") == "prog")["function"].to_list())
    assert not any(f.startswith("0x") for f in fns)


def fixture_result(rel: str) -> analysis.AnalysisResult:
    p = decode((FIXTURES / rel).read_bytes())
    items = []
    for i, vt in enumerate(p.sample_types):
        if vt.type == "cpu" and vt.unit == "nanoseconds":
            pt = synth.CPU
        elif vt.type == "delay" and vt.unit == "nanoseconds":
            pt = "mutex:delay:nanoseconds:contentions:count"
        else:
            continue
        items.append(synth.ingest_item({"service_name": "svc"}, pt, T0, select_type(p, i)))
    return analyse_items(items)


def test_jfr_cpu_regex_and_nothing_else() -> None:
    r = fixture_result("jfr/cortex-dev-01__kafka-0__cpu__0.jfr.gz")
    assert fired(r) == {"regex-matching"}
    assert rec(r, "regex-matching")["packages"] == "java.util.regex"


def test_jfr_lock_events() -> None:
    """JFR lock events (delay) fire lock contention, with the blocked time per measured second."""
    r = fixture_result("jfr/cortex-dev-01__kafka-0__cpu_lock0_alloc0__0.jfr.gz")
    assert set(r.tables["recommendations"].select("rule_id", "profile_type").iter_rows()) == {
        ("regex-matching", synth.CPU), ("lock-contention", "mutex:delay:nanoseconds:contentions:count")}
    lock = rec(r, "lock-contention")
    assert lock["usd_month"] is None and "kafka/log/UnifiedLog.append" in lock["top_functions"]


def test_go_pprof_gc_and_tls() -> None:
    r = fixture_result("pprof/pyroscope/cpu_go_truncated_1.pb.gz")
    assert fired(r) == {"garbage-collection", "crypto", "tls-handshakes"}
    assert "crypto/tls" in rec(r, "tls-handshakes")["packages"]
    assert rec(r, "garbage-collection")["packages"] == "runtime"


@pytest.mark.parametrize("rel", ["jfr/dump1.jfr.gz", "pprof/pyroscope/cpu.pb.gz", "pprof/parca/profile1.pb.gz"])
def test_profiles_without_bottleneck_flag_nothing(rel: str) -> None:
    assert fired(fixture_result(rel)) == set()
