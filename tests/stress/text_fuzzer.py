"""Seeded fuzz inputs for the text decoders (folded, lines, speedscope) and a worker that
runs a batch of them, reporting any exception other than ProfileFormatError.

Inputs: byte-level mutations (flip, insert, delete, duplicate, truncate, splice) of a
corpus of valid documents, structural mutations (line splicing with random counts for
folded/lines; random value replacement, key deletion and element shuffling inside the JSON
tree for speedscope), gzip-wrapped variants, and plain random bytes.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import time
import traceback
from collections.abc import Callable
from typing import Any

from fleetprof.formats.errors import Limits, ProfileFormatError

LIMITS = Limits(max_decompressed_bytes=1 << 20, max_stack_depth=12, max_string_length=200, max_samples=5_000)

FOLDED_CORPUS = [
    b"main;work;leaf 5\nmain;work 2\n",
    b'process 42:"python app.py";thread (0x7f00): "MainThread";<module> (app.py:3);hash_loop (app.py:12) 9\n 2\n',
    b"thread (4243): Worker-1;Thread.run (threading.py);spin (thr.py) 3\r\n# comment\n\n",
    b"main (dir;x/a.py:3);leaf (c.py:4) 2\nplain frame with spaces;other 1\n",
    b";".join(b"f%d" % i for i in range(30)) + b" 7\n",
    "unicod\u00e9;\u65e5\u672c;\u00a0nbsp 4\n".encode(),
    b"a 9223372036854775807\n",
    b"#root;x 3\n# not a stack\n",
]
LINES_CORPUS = [
    b"main;work;leaf\nmain;work\nmain;work;leaf\n",
    b"f (a.py:1);g (b.py:2)\n\n  spaced;frame 12\n",
    b";".join(b"f%d" % i for i in range(30)) + b"\n",
]
SPEEDSCOPE_CORPUS: list[Any] = [
    {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": "a", "file": "a.py", "line": 3}, {"name": "b"}, {"name": "c"}]},
        "profiles": [
            {"type": "sampled", "name": "s", "unit": "milliseconds", "startValue": 0, "endValue": 9,
             "samples": [[0, 1], [0, 1, 2], [], [2, 2, 2]], "weights": [1, 2.5, 3, 4]},
            {"type": "evented", "name": "e", "unit": "none", "startValue": 0, "endValue": 10,
             "events": [{"type": "O", "frame": 0, "at": 0}, {"type": "O", "frame": 1, "at": 1},
                        {"type": "C", "frame": 1, "at": 4}, {"type": "O", "frame": 2, "at": 5},
                        {"type": "C", "frame": 2, "at": 6}, {"type": "C", "frame": 0, "at": 10}]},
        ],
    },
    {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": f"f{i}"} for i in range(20)]},
        "profiles": [{"type": "sampled", "name": "deep", "unit": "bytes", "startValue": 0, "endValue": 1,
                      "samples": [list(range(20)), list(range(5))], "weights": [100, 1]}],
    },
]
ODD_VALUES: list[Any] = [None, -1, 0, 1, 2.5, 10**20, -(10**20), "x", "O", "C", [], {}, [[0]], True, 1e308, float("nan"), float("inf")]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """1–6 random byte edits."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 2 and b:
            del b[i : i + rng.randint(1, 8)]
        elif op == 3 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j : j + rng.randint(1, 16)]
        elif op == 4:
            del b[i:]
        elif op == 5:
            b[i:i] = rng.choice([b";", b" ", b"\n", b"(", b")", b":", b"#", b"\xff", b"\x00", b"{", b"[", b'"', b"0"])
        elif b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
    return bytes(b)


def splice_lines(rng: random.Random, corpus: list[bytes], counted: bool) -> bytes:
    lines = [ln for doc in corpus for ln in doc.split(b"\n")]
    out = []
    for _ in range(rng.randint(0, 12)):
        ln = rng.choice(lines)
        if counted and rng.random() < 0.5:
            stack = ln.rsplit(b" ", 1)[0]
            ln = stack + b" " + str(rng.choice([0, 1, 7, 2**31, 2**62, 2**63 - 1, 2**63, -1])).encode()
        out.append(ln)
    return rng.choice([b"\n", b"\r\n"]).join(out)


def mutate_json(rng: random.Random, doc: Any) -> Any:
    """Deep copy of ``doc`` with 1–3 random structural edits."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rng.randint(1, 3)):
        path: list[Any] = []
        node = doc
        while isinstance(node, dict | list) and node and rng.random() < 0.8:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        op = rng.randrange(4)
        if op == 0:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))  # never the shared constants
        elif op == 1:
            del parent[key]
        elif op == 2 and isinstance(parent, list):
            parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(parent[key]))  # a copy, not a second reference
        elif isinstance(parent, list):
            rng.shuffle(parent)
        else:
            parent[key] = [parent[key]]
    return doc


def folded_input(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.45:
        return mutate_bytes(rng, rng.choice(FOLDED_CORPUS))
    if r < 0.85:
        return splice_lines(rng, FOLDED_CORPUS, counted=True)
    if r < 0.9:
        return mutate_bytes(rng, gzip.compress(rng.choice(FOLDED_CORPUS), mtime=0))
    return rng.randbytes(rng.randint(0, 80))


def lines_input(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.45:
        return mutate_bytes(rng, rng.choice(LINES_CORPUS))
    if r < 0.85:
        return splice_lines(rng, LINES_CORPUS + FOLDED_CORPUS, counted=False)
    if r < 0.9:
        return mutate_bytes(rng, gzip.compress(rng.choice(LINES_CORPUS), mtime=0))
    return rng.randbytes(rng.randint(0, 80))


def speedscope_input(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.35:
        return mutate_bytes(rng, json.dumps(rng.choice(SPEEDSCOPE_CORPUS)).encode())
    if r < 0.8:
        return json.dumps(mutate_json(rng, rng.choice(SPEEDSCOPE_CORPUS))).encode()
    if r < 0.85:
        return mutate_bytes(rng, gzip.compress(json.dumps(SPEEDSCOPE_CORPUS[0]).encode(), mtime=0))
    if r < 0.9:
        return b"[" * rng.randint(1, 50_000) + b"{" * rng.randint(0, 10)
    return rng.randbytes(rng.randint(0, 80))


def _decoders() -> dict[str, tuple[Callable[..., Any], Callable[[random.Random], bytes]]]:
    from fleetprof.formats.folded import decode_folded
    from fleetprof.formats.lines import decode_lines
    from fleetprof.formats.speedscope import decode_speedscope

    return {
        "folded": (decode_folded, folded_input),
        "lines": (decode_lines, lines_input),
        "speedscope": (decode_speedscope, speedscope_input),
    }


def run_batch(name: str, seed: int, count: int, vectorized_every: int = 0) -> dict[str, Any]:
    """Decode ``count`` seeded inputs; returns counts, the slowest input's seconds and up
    to 5 unexpected failures (input repr + traceback). Every ``vectorized_every``-th text
    input is forced through the vectorised (polars) path."""
    decode, make = _decoders()[name]
    rng = random.Random(f"{name}:{seed}")
    ok = errors = 0
    slowest = 0.0
    failures: list[str] = []
    for i in range(count):
        data = make(rng)
        kw: dict[str, Any] = {"limits": LIMITS}
        if vectorized_every and name != "speedscope" and i % vectorized_every == 0:
            kw["vectorized"] = True
        t0 = time.perf_counter()
        try:
            p = decode(data, **kw)
            if any(t < 0 for t in p.totals()):
                failures.append(f"negative total for {data[:200]!r}")
            ok += 1
        except ProfileFormatError:
            errors += 1
        except Exception:  # noqa: BLE001 - the point of the fuzzer
            if len(failures) < 5:
                failures.append(f"{data[:300]!r}\n{traceback.format_exc()}")
        slowest = max(slowest, time.perf_counter() - t0)
    return {"name": name, "ok": ok, "errors": errors, "failures": failures, "slowest": slowest}
