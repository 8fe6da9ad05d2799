"""Fuzz decode_pprof and decode_push_request with over a million mutated inputs (seeded
mutation loop over the shared fixtures and the captured agent push): the only exception
allowed is ProfileFormatError, and no single input may take long (no hang).

Runs only under ``make stress`` (marker ``stress``); spread over the available cores."""

from __future__ import annotations

import gzip
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

PPROF_INPUTS = 820_000
PUSH_INPUTS = 200_000
CHUNK = 20_000
SLOW_INPUT_S = 10.0

HERE = Path(__file__).resolve()
FIXTURES = HERE.parents[2] / ".." / "shared" / "fixtures" / "pprof"
PUSH_BODY = HERE.parents[1] / "formats" / "data" / "pyroscope_io_1.4_push.body.gz"


def _seeds(kind: str) -> list[bytes]:
    if kind == "push":
        body = PUSH_BODY.read_bytes()
        return [body, gzip.decompress(body)]
    out = []
    for p in sorted(FIXTURES.rglob("*")):
        if p.is_file() and p.suffix != ".md" and p.stat().st_size < 4000:
            data = p.read_bytes()
            out.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return out


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 5)):
        op = rng.random()
        n = len(data)
        i = rng.randrange(n + 1)
        if op < 0.45 and n:
            data[min(i, n - 1)] = rng.randrange(256)
        elif op < 0.55:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op < 0.65 and n:
            del data[i : i + rng.randint(1, 8)]
        elif op < 0.72:
            data = data[:i]
        elif op < 0.80 and n:
            j = rng.randrange(n)
            data[i:i] = data[j : j + rng.randint(1, 32)]  # duplicate a chunk
        elif op < 0.87:
            data[i:i] = b"\xff" * rng.randint(1, 11)  # over-long varints
        elif op < 0.93:
            other = rng.choice(seeds)
            j = rng.randrange(len(other) + 1)
            data = data[:i] + other[j:]  # splice
        else:
            data[i:i] = bytes([rng.randrange(1, 16) << 3 | rng.choice((0, 1, 2, 5, 3, 7))])
    if rng.random() < 0.05:
        data = bytearray(gzip.compress(bytes(data), compresslevel=1))
    return bytes(data)


def run_chunk(kind: str, seed: int, count: int) -> tuple[int, int, float]:
    """Decode ``count`` mutated inputs; returns (accepted, rejected, slowest seconds)."""
    from fleetprof.formats.errors import ProfileFormatError
    from fleetprof.formats.pprof import decode_pprof
    from fleetprof.formats.pushrequest import decode_push_request

    decode = decode_pprof if kind == "pprof" else decode_push_request
    rng = random.Random(seed)
    seeds = _seeds(kind)
    ok = bad = 0
    slowest = 0.0
    for _ in range(count):
        data = mutate(rng, seeds)
        t = time.perf_counter()
        try:
            decode(data)
            ok += 1
        except ProfileFormatError:
            bad += 1
        except Exception as e:  # pragma: no cover - a failure is reported with its input
            raise AssertionError(f"{kind} input {data[:200]!r}… raised {type(e).__name__}: {e}") from e
        slowest = max(slowest, time.perf_counter() - t)
    return ok, bad, slowest


@pytest.mark.stress
@pytest.mark.timeout(3600)
def test_fuzz_million_inputs():
    jobs = [("pprof", 1000 + i, CHUNK) for i in range(PPROF_INPUTS // CHUNK)]
    jobs += [("push", 5000 + i, CHUNK) for i in range(PUSH_INPUTS // CHUNK)]
    total = ok = bad = 0
    slowest = 0.0
    with ProcessPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for (kind, _, count), (a, r, s) in zip(jobs, pool.map(run_chunk, *zip(*jobs, strict=True)), strict=True):
            assert a + r == count, kind
            total += count
            ok += a
            bad += r
            slowest = max(slowest, s)
    print(f"fuzzed {total} inputs: {ok} decoded, {bad} rejected with ProfileFormatError; slowest {slowest:.2f} s")
    assert total >= 1_000_000
    assert ok > 0 and bad > 0
    assert slowest < SLOW_INPUT_S
