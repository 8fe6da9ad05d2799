"""fleetprof.flame.folded_tree: the direct folded → call tree path draws exactly what the
general decoder draws, and hands anything it does not cover back to it."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.folded_shapes import generate
from fleetprof.flame import folded_tree
from fleetprof.flame.folded_tree import folded_call_tree
from fleetprof.formats.errors import Limits
from fleetprof.formats.folded import SAMPLES, decode_folded
from fleetprof.render.svg import min_ticks_of, render_svg, render_tree_svg

MIN = min_ticks_of(1200, 0.1)


def _same_svg(raw: bytes, *, icicle: bool = False, plain: bytes | None = None) -> None:
    """The direct path draws ``raw`` as the general path draws ``plain`` (default ``raw``)."""
    tree = folded_call_tree(raw, min_total=MIN)
    assert tree is not None
    direct = render_tree_svg(tree, SAMPLES, title="t <&>", icicle=icicle)
    assert direct == render_svg(decode_folded(raw if plain is None else plain), 0, title="t <&>", icicle=icicle)


@pytest.mark.parametrize("shape, stacks", [("hot", 3000), ("vocab", 3000), ("deep", 60)])
def test_shapes_draw_as_the_general_path(shape: str, stacks: int):
    _same_svg(generate(shape, stacks, seed=11))


def test_duplicates_prefixes_empty_stacks_and_narrow_frames():
    rng = np.random.default_rng(5)
    lines = [b"main;a;b 5", b"main;a;b 7", b"main;a 3", b" 2", b"main;a;b;c 1", b"x.y;z 900000", b"main;ab 4"]
    lines += [f"main;n{i};leaf{i % 7} {int(rng.integers(1, 4))}".encode() for i in range(400)]
    raw = b"\n".join(lines) + b"\n\n"
    _same_svg(raw)
    _same_svg(raw, icicle=True)


@pytest.mark.parametrize("budget", [1, 7, 300])
def test_steps_of_any_width_draw_as_the_general_path(monkeypatch, budget: int):
    """One level per step, a few, or every level of the lines at once."""
    monkeypatch.setattr(folded_tree, "CELL_BUDGET", budget)
    _same_svg(generate("deep", 25, seed=4) + generate("hot", 300, seed=4))


def test_gzip_input_draws_as_the_plain_file():
    raw = generate("vocab", 800, seed=6)
    _same_svg(gzip.compress(raw), plain=raw)
    assert folded_call_tree(gzip.compress(raw), min_total=MIN, limits=Limits(max_decompressed_bytes=1000)) is None
    assert folded_call_tree(gzip.compress(raw)[:-20], min_total=MIN) is None  # truncated: the general path reports it


def test_zero_counts_draw_as_the_general_path():
    """Nodes whose total is zero are not drawn (nor is anything when every count is zero)."""
    for raw in (b"a;b 0\n", b"a;b 0\nc 0\n", b"a 0\nb;c 3\n", b" 0\n"):
        _same_svg(raw)


def test_long_frames_are_compared_byte_for_byte(monkeypatch):
    """Frames longer than 16 bytes that share their first and last eight bytes stay apart,
    also when the file ends without a newline right after them."""
    mid = [b"module_a.X" + bytes([c]) * k + b"._sharedtail" for c in b"pq" for k in (1, 9, 20)]
    raw = b"\n".join(b"root;" + m + b";" + m + b" " + str(i + 1).encode() for i, m in enumerate(mid)) + b"\nroot;" + mid[0] + b" 9"
    _same_svg(raw)
    real = folded_tree._Bytes.fingerprints

    def zero_hashes(self, start, length):
        _, head, tail = real(self, start, length)
        return np.zeros(len(start), np.uint64), head, tail

    monkeypatch.setattr(folded_tree._Bytes, "fingerprints", zero_hashes)
    assert folded_call_tree(raw, min_total=MIN) is None


def test_grouping_order_puts_equal_keys_together():
    """Keys sharing their top 32 bits but differing below still come out grouped."""
    top = np.uint64(0xABCD0123) << np.uint64(32)
    keys = np.array([top | np.uint64(1), np.uint64(5) << np.uint64(40), top | np.uint64(2), top | np.uint64(1), np.uint64(7)], np.uint64)
    for k in (keys, np.random.default_rng(1).integers(0, 50, 3000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)):
        order = folded_tree._grouping_order(k)
        assert sorted(order.tolist()) == list(range(len(k)))
        runs = k[order][np.concatenate([[True], k[order][1:] != k[order][:-1]])]
        assert len(runs) == len(np.unique(k))  # each distinct key forms one run


def test_tree_values():
    tree = folded_call_tree(b"a;b 2\na;b 3\na 1\n 4\nc 10\n", min_total=lambda total: 0.0)
    assert tree is not None
    names = [tree.names[i] for i in tree.name]
    by_name = {(n, int(d)): (int(s), int(t)) for n, d, s, t in zip(names, tree.depth, tree.self[:, 0], tree.total[:, 0], strict=True)}
    assert by_name == {("a", 1): (1, 6), ("b", 2): (5, 5), ("c", 1): (10, 10)}
    assert int(tree.root_self[0]) == 4 and int(tree.root_total[0]) == 20
    assert [int(tree.depth[p]) for p in tree.parent[tree.parent >= 0]] == [1]


@pytest.mark.parametrize(
    "raw",
    [
        b"main;work (app.py:3) 2\n",  # py-spy locations merge by name: general path
        b"a;;b 1\n",  # empty frame
        b"a;b; 1\n",
        b"# comment\na;b 1\n",
        b"a;b\t1\n",
        "a;\u00e9 1\n".encode(),
        b"a;b x\n",
        b"",
    ],
)
def test_other_inputs_take_the_general_path(raw: bytes):
    assert folded_call_tree(raw, min_total=MIN) is None


def test_limits_take_the_general_path():
    assert folded_call_tree(b"a;b;c;d 1\n", min_total=MIN, limits=Limits(max_stack_depth=3)) is None
    assert folded_call_tree(b"abcdef;b 1\n", min_total=MIN, limits=Limits(max_string_length=4)) is None


def test_hash_collisions_are_detected(monkeypatch):
    """Every frame hashing alike must not merge different frames."""
    real = folded_tree._Bytes.fingerprints

    def zero_hashes(self, start, length):
        _, head, tail = real(self, start, length)
        return np.zeros(len(start), np.uint64), head, tail

    monkeypatch.setattr(folded_tree._Bytes, "fingerprints", zero_hashes)
    assert folded_call_tree(b"a;b 1\na;c 2\n", min_total=MIN) is None
    tree = folded_call_tree(b"a;b 1\na;b 2\n", min_total=MIN)  # equal frames: no collision
    assert tree is not None and tree.size == 2


def test_flamegraph_command_takes_the_direct_path_without_heavy_imports(tmp_path: Path):
    """The CLI draws a plain folded file, and its gzip'd copy, as the general path does,
    loading no kernels, no dataframe library and no pydantic."""
    src = tmp_path / "in.folded"
    raw = generate("vocab", 500, seed=2)
    src.write_bytes(raw)
    gz = tmp_path / "in.folded.gz"
    gz.write_bytes(gzip.compress(raw))
    code = (
        "import sys; from fleetprof.cli import main\n"
        "for src, out in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):\n"
        " sys.argv=['fleetprof','flamegraph',src,'-o',out]\n"
        " try:\n  main()\n except SystemExit as e:\n  assert not e.code, e.code\n"
        "import os; assert os.environ['OPENBLAS_NUM_THREADS'] == '1'\n"
        "heavy = ('numba', 'polars', 'pyarrow', 'fastapi', 'opentelemetry', 'boto3', 'pydantic', 'rich')\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
    )
    out, out_gz = tmp_path / "out.svg", tmp_path / "gz.svg"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    subprocess.run([sys.executable, "-c", code, str(src), str(out), str(gz), str(out_gz)], check=True, timeout=120, env=env)
    expected = render_svg(decode_folded(raw), 0, title="in.folded · samples")
    assert out.read_text() == expected
    assert out_gz.read_text() == render_svg(decode_folded(raw), 0, title="in.folded.gz · samples")
