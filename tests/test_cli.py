"""End-to-end tests of the ``fleetprof`` CLI, run as subprocesses (``python -m fleetprof``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetprof.formats.pprof import decode_pprof

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "pprof" / "parca"

BASE = "main;handle;parse 300\nmain;handle;render 300\nmain;handle;db 300\nmain;log 100\n"
CAND = "main;handle;parse 1300\nmain;handle;render 300\nmain;handle;db 300\nmain;log 100\n"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "fleetprof", *args], input=stdin, capture_output=True, cwd=REPO, timeout=120
    )


def one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert b"Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def folded(tmp_path: Path) -> tuple[Path, Path]:
    b, c = tmp_path / "base.folded", tmp_path / "cand.folded"
    b.write_text(BASE)
    c.write_text(CAND)
    return b, c


def test_help_lists_commands_with_examples():
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in ("convert", "flamegraph", "top", "diff", "regress"):
        assert cmd in proc.stdout.decode()
    reg = run("regress", "--help")
    assert reg.returncode == 0 and b"Examples" in reg.stdout and b"--threshold" in reg.stdout


def test_convert_pprof_to_folded_stdout_and_back_via_stdin(tmp_path: Path):
    src = FIXTURES / "profile1.pb.gz"
    ref = decode_pprof(src.read_bytes())
    folded = run("convert", str(src), "-o", "-", "--to", "folded")
    assert folded.returncode == 0, folded.stderr
    lines = folded.stdout.decode().splitlines()
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == ref.totals()[ref.type_index()]
    out = tmp_path / "again.pb.gz"
    back = run("convert", "-", "-o", str(out), stdin=folded.stdout)
    assert back.returncode == 0, back.stderr
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert decode_pprof(out.read_bytes()).totals() == [ref.totals()[ref.type_index()]]


def test_flamegraph_svg_html_json_with_merge_and_filters(tmp_path: Path, folded):
    b, c = folded
    svg = tmp_path / "fg.svg"
    proc = run("flamegraph", str(b), str(c), "-o", str(svg), "--title", "merged demo", "--icicle", "--max-nodes", "5")
    assert proc.returncode == 0, proc.stderr
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and "merged demo" in text
    html = tmp_path / "fg.html"
    assert run("flamegraph", str(b), "-o", str(html)).returncode == 0
    assert "<html" in html.read_text().lower()
    fb = run("flamegraph", str(b), str(c), "-o", "-", "--to", "flamebearer", "--ignore", "^log$")
    assert fb.returncode == 0, fb.stderr
    data = json.loads(fb.stdout)
    assert data["flamebearer"]["numTicks"] == 1000 + 2000 - 200
    focused = json.loads(run("flamegraph", str(b), "-o", "-", "--to", "flamebearer", "--focus", "parse").stdout)
    assert focused["flamebearer"]["numTicks"] == 300


def test_top_json_and_table(folded):
    b, c = folded
    proc = run("top", str(b), str(c), "-n", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == ["parse", "db"]
    assert rows[0]["self"] == 1600 and rows[0]["self_pct"] == pytest.approx(100 * 1600 / 3000)
    table = run("top", str(b))
    assert table.returncode == 0 and b"parse" in table.stdout and b"total %" in table.stdout


def test_diff_svg_json_csv(tmp_path: Path, folded):
    b, c = folded
    svg = tmp_path / "d.svg"
    assert run("diff", str(b), str(c), "-o", str(svg)).returncode == 0
    assert "<svg" in svg.read_text()
    fb = json.loads(run("diff", str(b), str(c), "-o", "-", "--to", "flamebearer").stdout)
    assert fb["flamebearer"]["numTicks"] == 3000
    csv = run("diff", str(b), str(c), "-o", "-", "--to", "csv").stdout.decode().splitlines()
    assert csv[0].startswith("node_id,") and any(line.split(",")[6] == "main;handle;parse" for line in csv[1:])


def test_regress_exit_codes_and_reports(tmp_path: Path, folded):
    b, c = folded
    bad = run("regress", str(b), str(c), "--threshold", "5")
    assert bad.returncode == 1, bad.stderr
    md = bad.stdout.decode()
    assert "| `parse` | 30.00 | 65.00 | +35.00 | self |" in md
    ok = run("regress", str(b), str(b))
    assert ok.returncode == 0 and "no regression" in ok.stdout.decode()
    svg = tmp_path / "r.svg"
    js = run("regress", str(b), str(c), "--format", "json", "--threshold", "50", "--diff-svg", str(svg))
    assert js.returncode == 0
    assert json.loads(js.stdout)["failed"] is False
    assert svg.exists() and "<svg" in svg.read_text()
    # the noise floor: only main (100 %, unchanged) is above a 96 % floor (handle: 95 %)
    assert run("regress", str(b), str(c), "--min-share", "96").returncode == 0


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, folded):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 3)
    one_error_line(run("top", str(garbage)))
    assert "missing" in one_error_line(run("top", str(tmp_path / "missing.pb.gz")))
    assert "nope" in one_error_line(run("top", str(FIXTURES / "profile1.pb.gz"), "-t", "nope"))
    one_error_line(run("top", "-", "--format", "folded", stdin=b"a;b notanumber\n"))
    one_error_line(run("convert", str(folded[0]), "-o", "-", "--to", "png"))
    one_error_line(run("flamegraph", str(folded[0]), "-o", str(tmp_path / "x.png")))
    one_error_line(run("flamegraph", str(folded[0]), "-o", "-", "--focus", "("))
    one_error_line(run("regress", str(folded[0]), str(garbage)))
    one_error_line(run("top", "-", "-", stdin=b"a 1\n"))


def test_top_by_line_without_lines_gives_cli_advice(folded):
    proc = run("top", "--by", "line", str(folded[0]))
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "--by frame" in line and "--by function" in line and "keep_lines" not in line


def test_flamegraph_title_and_orientation_follow_svg(tmp_path: Path, folded):
    out = tmp_path / "fg.html"
    assert run("flamegraph", str(folded[0]), "-o", str(out)).returncode == 0
    text = out.read_text()
    assert "<title>base.folded · samples</title>" in text and '"icicle":false' in text
    assert run("flamegraph", str(folded[0]), "-o", str(out), "--icicle").returncode == 0
    assert '"icicle":true' in out.read_text()


def test_option_values_keep_typer_checks_and_consoles_come_on_demand(tmp_path: Path, folded):
    """Plain string options skip typer's pydantic coercion; other values still get it (and
    its error); the shared rich consoles are made when first asked for."""
    bad = run("flamegraph", str(folded[0]), "-o", str(tmp_path / "x.svg"), "--max-nodes", "many")
    assert bad.returncode == 2 and b"--max-nodes" in bad.stderr and b"Traceback" not in bad.stderr
    code = (
        "import sys, fleetprof.cli as c\n"
        "assert 'rich' not in sys.modules\n"
        "from fleetprof.cli import err_console, out_console\n"
        "assert err_console.stderr and not out_console.stderr and c.console('err') is err_console\n"
        "try:\n c.no_such_name\nexcept AttributeError:\n pass\nelse:\n raise SystemExit('no AttributeError')\n"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0


def test_allocator_tuning_is_skipped_without_mallopt(monkeypatch):
    """A C library without ``mallopt`` (musl, macOS) leaves the allocator alone, silently."""
    import ctypes

    import fleetprof.cli as cli

    class NoMallopt:
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert cli._keep_freed_memory() is None
