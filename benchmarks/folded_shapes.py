"""Seeded folded files of three shapes unlike :mod:`benchmarks.gen_folded`'s random walks,
for the whole-process CLI benchmark (:mod:`benchmarks.bench_cli`).

* ``hot`` — few hot stacks: the file concatenates many per-thread/per-interval recordings,
  so a few hundred distinct stacks repeat on most lines (Zipf-weighted), plus a tail of
  unique cold stacks; ``perf script | stackcollapse`` outputs appended together look so.
* ``vocab`` — a large vocabulary of short ``module.function`` names (``vocab_frames``
  distinct frames, 20k+) sharing module prefixes; stacks are unique and shallow-to-medium
  (depth 6–30), built as a tree of call paths so prefixes are shared between stacks.
* ``deep`` — deep recursion: a recursive-descent parser / tree walker whose stacks are
  100–900 frames of a handful of mutually recursive functions over a common prefix.

Every generator is vectorised (numpy over frame-index matrices); the output depends only
on the shape, the size and the seed.

Usage: ``python -m benchmarks.folded_shapes OUT --shape vocab [--stacks 200000] [--seed 7]``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHAPES = ("hot", "vocab", "deep")
DEFAULT_STACKS = {"hot": 150_000, "vocab": 200_000, "deep": 9_000}
"""Lines per shape for files of roughly 30–60 MB (comparable to a 51 MB, 200k-stack file)."""


def _join(names: np.ndarray, frames: list[np.ndarray], counts: np.ndarray) -> bytes:
    """Folded text: stack ``i`` is ``;``.join(names[frames[i]]) followed by its count."""
    out = [";".join(names[f].tolist()) + f" {int(c)}" for f, c in zip(frames, counts, strict=True)]
    return ("\n".join(out) + "\n").encode()


def _vocab(rng: np.random.Generator, n: int, modules: int) -> np.ndarray:
    """``n`` distinct short ``module.function`` names over ``modules`` shared module prefixes."""
    verbs = np.array(["get", "put", "run", "do", "on", "to", "mk", "rd", "wr", "fx", "go", "is"])
    mods = np.array([f"m{i:x}" for i in range(modules)])
    m = rng.integers(0, modules, size=n)
    v = rng.integers(0, len(verbs), size=n)
    names = np.char.add(np.char.add(np.char.add(mods[m], "."), verbs[v]), np.arange(n).astype(str))
    return names


def _unique_walks(
    rng: np.random.Generator, n: int, depth_lo: int, depth_hi: int, body: Callable[[int, np.ndarray], np.ndarray]
) -> list[np.ndarray]:
    """``n`` distinct stacks; most extend a prefix of an earlier stack (shared prefixes),
    ``body(k, prefix)`` supplies the ``k`` frames below the prefix."""
    frames: list[np.ndarray] = []
    seen: set[bytes] = set()
    while len(frames) < n:
        d = int(rng.integers(depth_lo, depth_hi + 1))
        if frames and rng.random() < 0.9:
            base = frames[int(rng.integers(len(frames)))]
            keep = int(rng.integers(1, min(len(base), d)))
            prefix = base[:keep]
        else:
            prefix = np.zeros(1, dtype=np.int64)
        s = np.concatenate([prefix, body(d - len(prefix), prefix)])
        key = s.tobytes()
        if key not in seen:
            seen.add(key)
            frames.append(s)
    return frames


HOT_NAMES = [
    "main", "run_loop", "dispatch", "handle", "Request.parse", "json.loads", "json.dumps", "Encoder.encode",
    "re.match", "sre_compile", "db.query", "Cursor.execute", "socket.recv", "socket.send", "zlib.compress",
    "hashlib.sha256", "gc.collect", "malloc", "memcpy", "free", "lock.acquire", "futex_wait", "render",
    "Template.render", "escape", "log.info", "Formatter.format", "write", "ssl.read", "ssl.write",
]


def hot(n_stacks: int, seed: int) -> bytes:
    """Few hot stacks (see the module docstring): 40 stacks carry about 90 % of the
    samples; the other lines are distinct cold stacks of 1–3 samples each."""
    rng = np.random.default_rng(seed)
    names = np.array(HOT_NAMES + [f"lib{i // 50}.cold_{i}" for i in range(2000)])
    n_hot = 40
    frames = _unique_walks(rng, n_stacks, 8, 40, lambda k, _p: rng.integers(1, len(names), size=k))
    counts = rng.integers(1, 4, size=n_stacks)
    hot_rows = rng.choice(n_stacks, size=n_hot, replace=False)
    counts[hot_rows] = rng.integers(1, 10, size=n_hot) * (9 * int(counts.sum()) // n_hot // 5)
    return _join(names, frames, counts)


def vocab(n_stacks: int, seed: int, vocab_frames: int = 30_000) -> bytes:
    """Large vocabulary of short names with shared prefixes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    names = _vocab(rng, vocab_frames, modules=vocab_frames // 40)
    frames = _unique_walks(rng, n_stacks, 6, 30, lambda k, _p: rng.integers(0, vocab_frames, size=k))
    counts = np.minimum(rng.zipf(1.5, size=n_stacks), 100_000)
    return _join(names, frames, counts)


DEEP_NAMES = [
    "main", "Interpreter.run", "eval_module", "parse_expr", "parse_term", "parse_factor", "parse_unary",
    "eval_node", "visit_Call", "visit_BinOp", "Tree.walk", "Tree.walk_children", "apply", "lookup",
    "Scope.get", "dict_get", "malloc", "memcpy",
]


def deep(n_stacks: int, seed: int) -> bytes:
    """Deep recursion (see the module docstring): 100–900 frames, most of them a cycle of
    2–5 mutually recursive functions continuing the prefix's recursion."""
    rng = np.random.default_rng(seed)
    names = np.array(DEEP_NAMES)
    recursive = np.arange(3, 14)

    def body(k: int, _prefix: np.ndarray) -> np.ndarray:
        start = int(rng.integers(0, len(recursive) - 5))
        cycle = recursive[start : start + int(rng.integers(2, 6))]
        out = np.resize(cycle, k)
        out[-1] = rng.integers(12, len(names))  # a leaf: lookup, malloc, …
        return out

    frames = _unique_walks(rng, n_stacks, 100, 900, body)
    counts = np.minimum(rng.zipf(1.4, size=n_stacks), 1_000_000)
    return _join(names, frames, counts)


def generate(shape: str, n_stacks: int | None = None, seed: int = 7) -> bytes:
    """Folded bytes of ``shape`` (one of :data:`SHAPES`) with ``n_stacks`` lines."""
    n = DEFAULT_STACKS[shape] if n_stacks is None else n_stacks
    if shape == "hot":
        return hot(n, seed)
    if shape == "vocab":
        return vocab(n, seed)
    if shape == "deep":
        return deep(n, seed)
    raise ValueError(f"unknown shape {shape!r} (expected one of {', '.join(SHAPES)})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--shape", choices=SHAPES, required=True)
    ap.add_argument("--stacks", type=int)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    data = generate(args.shape, args.stacks, args.seed)
    args.out.write_bytes(data)
    lines = data.count(b"\n")
    print(f"wrote {args.out}: {args.shape}, {lines} lines, {len(data) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
