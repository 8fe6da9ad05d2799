"""Seeded generator of a large folded (collapsed) stack file for the flame-graph benchmark.

Stacks are random walks in a synthetic call graph of ``package.module.function`` frames:
each stack either extends a prefix of an earlier stack (so prefixes are shared, as in a
real profile) or starts from one of a few entry points, then walks callee edges down to
its depth. Depths are 10–60 (mean ≈ 26), counts Zipf(1.6) (clipped), every stack is
unique, and the output is identical for a given seed.

Usage: ``python -m benchmarks.gen_folded OUT [--stacks 200000] [--seed 1]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PACKAGES = [
    "app", "api", "db", "orm", "net", "rpc", "io", "log", "auth", "kv", "json", "http",
    "core", "sql", "mq", "os", "re", "ssl", "util", "web", "task", "grpc", "fs", "ui",
]
MODULES = ["conn", "pool", "view", "req", "srv", "cli", "base", "fmt", "enc", "cfg", "mw", "tx", "buf", "ctx", "job", "ev"]
FUNCS = [
    "run", "get", "put", "call", "read", "send", "recv", "load", "save", "wait", "poll",
    "init", "open", "exec", "emit", "join", "next", "iter", "hash", "find", "walk", "sort",
    "parse", "flush", "dump", "close", "apply", "step", "_call", "handle",
]
NATIVE = [
    "malloc", "free", "memcpy", "memset", "futex", "epoll", "read", "write", "mmap", "clone",
    "main", "start", "poll", "recv", "send", "lock", "gc", "sched", "yield", "sleep",
]


def frame_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` frame names: mostly ``package.module.function``, some bare native symbols
    (native names repeat: the same symbol is reached from many call sites)."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        if rng.random() < 0.4:
            names.append(NATIVE[rng.integers(len(NATIVE))])
            continue
        p = PACKAGES[rng.integers(len(PACKAGES))]
        m = MODULES[rng.integers(len(MODULES))]
        f = FUNCS[rng.integers(len(FUNCS))]
        name = f"{p}.{m}.{f}"
        if name in seen:
            name = f"{name}{rng.integers(2, 99)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def generate(n_stacks: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Unique folded stack strings (root first, ``;``-separated) and their counts."""
    rng = np.random.default_rng(seed)
    n_frames = 6000
    names = frame_names(rng, n_frames)
    callees = rng.integers(0, n_frames, size=(n_frames, 6))
    entries = rng.integers(0, n_frames, size=8)
    depths = np.clip(10 + rng.gamma(2.0, 8.4, size=n_stacks), 10, 60).astype(np.int64)
    stacks: list[list[int]] = []
    lines: list[str] = []
    seen: set[str] = set()
    while len(stacks) < n_stacks:
        depth = int(depths[len(stacks)])
        if stacks and rng.random() < 0.95:
            base = stacks[int(rng.integers(len(stacks)))]
            keep = int(rng.integers(1, min(len(base), depth)))
            stack = base[:keep]
        else:
            stack = [int(entries[rng.integers(len(entries))])]
        walk = rng.integers(0, 6, size=depth)
        while len(stack) < depth:
            stack.append(int(callees[stack[-1], walk[len(stack)]]))
        line = ";".join([names[f] for f in stack])
        if line in seen:
            continue
        seen.add(line)
        stacks.append(stack)
        lines.append(line)
    counts = np.minimum(rng.zipf(1.6, size=n_stacks), 10_000_000).astype(np.int64)
    return lines, counts


def write_folded(path: Path, n_stacks: int = 200_000, seed: int = 1) -> int:
    """Write the folded file; returns its size in bytes."""
    lines, counts = generate(n_stacks, seed)
    text = "".join(f"{line} {int(c)}\n" for line, c in zip(lines, counts, strict=True))
    data = text.encode()
    path.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output folded file")
    ap.add_argument("--stacks", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    size = write_folded(args.out, args.stacks, args.seed)
    print(f"wrote {args.out}: {args.stacks} stacks, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
