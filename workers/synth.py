"""Synthetic fleets for tests, notebooks and benchmarks (deterministic, seeded).

:func:`scenario_items` builds the *analysis scenario*: two consecutive one-hour windows of
three services with known hotspots, one CPU regression (between windows and between
versions), one memory leak and one contention hotspot; :data:`SCENARIO_EXPECTED` lists
exactly what the analysis must flag. :func:`fleet_items` builds bulk random fleets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fleetprof.model import Profile, Stacks, ValueType, build

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
INUSE = "memory:inuse_space:bytes:space:bytes"
ALLOC = "memory:alloc_space:bytes:space:bytes"
MUTEX = "mutex:delay:nanoseconds:contentions:count"
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Item:
    """Same fields as ``fleetprof.segment.writer.IngestItem``."""

    labels: dict[str, str]
    profile_type: str
    time_ms: int
    profile: Profile


def ingest_item(labels: dict[str, str], profile_type: str, time_ms: int, profile: Profile) -> Item:
    """An ``IngestItem`` of the segment writer when it is importable, else :class:`Item`."""
    try:
        from fleetprof.segment.writer import IngestItem  # type: ignore[import-not-found]
    except ImportError:
        return Item(labels, profile_type, time_ms, profile)
    return IngestItem(labels=labels, profile_type=profile_type, time_ms=time_ms, profile=profile)  # type: ignore[no-any-return]


def profile_from_stacks(stacks: Mapping[str, int], profile_type: str) -> Profile:
    """One-type profile from ``{"a;b;c": value}`` folded stacks (root first)."""
    parts = profile_type.split(":")
    vt = ValueType(parts[1], parts[2])
    index: dict[str, int] = {}
    names: list[str] = []
    offsets = [0]
    frames: list[int] = []
    for stack in stacks:
        for name in stack.split(";"):
            if name not in index:
                index[name] = len(names)
                names.append(name)
            frames.append(index[name])
        offsets.append(len(frames))
    values = np.array(list(stacks.values()), dtype=np.int64).reshape(-1, 1)
    st = Stacks(names=names, files=[""] * len(names), offsets=np.array(offsets, np.int64),
                frames=np.array(frames, np.int64), values=values)
    return build(st, [vt], period_type=ValueType(parts[3], parts[4]) if len(parts) >= 5 else None)


def _split(total: int, shares: Mapping[str, float], rng: np.random.Generator, jitter: float) -> dict[str, int]:
    """Distribute ``total`` over stacks by ``shares`` with relative jitter (exact total)."""
    keys = list(shares)
    w = np.array([shares[k] for k in keys]) * (1 + rng.uniform(-jitter, jitter, len(keys)))
    vals = np.floor(total * w / w.sum()).astype(np.int64)
    vals[-1] += total - int(vals.sum())
    return dict(zip(keys, vals.tolist(), strict=True))


API_V1 = {"main;api.handler;encoding/json.Marshal": 0.30, "main;api.handler;db.Query": 0.40, "main;api.handler;api.compute": 0.30}
API_V2 = {"main;api.handler;encoding/json.Marshal": 0.30, "main;api.handler;db.Query": 0.15, "main;api.handler;api.compute": 0.55}
CHECKOUT = {
    "main;checkout.Pay;encoding/json.Unmarshal": 0.12,
    "main;checkout.Pay;crypto/tls.(*Conn).Handshake": 0.08,
    "main;checkout.Pay;checkout.price": 0.80,
}
SEARCH = {"main;search.Query;index.Lookup": 0.70, "main;search.Query;regexp.(*Regexp).FindAllString": 0.20, "main;search.Query;rank.Score": 0.10}
SEARCH_MUTEX = {
    "main;search.Query;index.Lookup;sync.(*Mutex).Unlock": 0.90,
    "main;search.Query;stats.Add;sync.(*Mutex).Unlock": 0.05,
    "main;search.Query;config.Reload;sync.(*RWMutex).RUnlock": 0.05,
}

SCENARIO_EXPECTED = {
    "regressions": {("window", "api", "api.compute"), ("version", "api", "api.compute")},
    "leaks": {("checkout", "cache.Put")},
    "contention": {("search", "index.Lookup")},
    "recommendations": {("json-serialization", "api"), ("json-serialization", "checkout"),
                        ("tls-handshakes", "checkout"), ("regex-matching", "search")},
    "shared_hotspots": {"json"},
    # 4 api instances at 0.5 vCPU for the hour: 2 vCPU × 730 h × $0.0425
    "api_usd_month": 2 * 730 * 0.0425,
}


def scenario_items(start_ms: int, *, step_s: int = 300, seed: int = 7) -> list[Item]:
    """Two windows ``[start - 1h, start)`` and ``[start, start + 1h)`` (see module docstring)."""
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    cpu_per_profile = int(0.5 * step_s * 1e9)  # 0.5 core during each step
    for w, w0 in enumerate((start_ms - HOUR_MS, start_ms)):
        for k, t in enumerate(range(w0, w0 + HOUR_MS, step_s * 1000)):
            frac = k / (HOUR_MS / (step_s * 1000) - 1)
            for inst in range(4):
                version = "v2" if (w == 1 and inst >= 2) else "v1"
                api = {"service_name": "api", "instance": f"api-{inst}", "version": version}
                shares = API_V2 if version == "v2" else API_V1
                items.append(ingest_item(api, CPU, t, profile_from_stacks(_split(cpu_per_profile, shares, rng, 0.02), CPU)))
                co = {"service_name": "checkout", "instance": f"co-{inst}", "version": "1.4.0"}
                items.append(ingest_item(co, CPU, t, profile_from_stacks(_split(cpu_per_profile, CHECKOUT, rng, 0.02), CPU)))
                mem = {
                    "main;checkout.init": int(50e6 * (1 + rng.uniform(-0.02, 0.02))),
                    "main;checkout.Pay;bufpool.Get": int(20e6 * (1 + rng.uniform(-0.05, 0.05))),
                    "main;checkout.Pay;cache.Put": int((10e6 + 30e6 * (frac if w == 1 else 0.0)) * (1 + rng.uniform(-0.02, 0.02))),
                }
                items.append(ingest_item(co, INUSE, t, profile_from_stacks(mem, INUSE)))
                se = {"service_name": "search", "instance": f"se-{inst}", "version": "2024.11.02"}
                items.append(ingest_item(se, CPU, t, profile_from_stacks(_split(cpu_per_profile, SEARCH, rng, 0.02), CPU)))
                items.append(ingest_item(se, MUTEX, t, profile_from_stacks(_split(10**9, SEARCH_MUTEX, rng, 0.02), MUTEX)))
    return items


def random_stack_table(rng: np.random.Generator, n_stacks: int, n_functions: int, max_depth: int) -> list[str]:
    """``n_stacks`` distinct random folded stacks over ``n_functions`` function names."""
    funcs = [f"pkg{i % 17}.fn{i}" for i in range(n_functions)]
    out: set[str] = set()
    while len(out) < n_stacks:
        depth = int(rng.integers(2, max_depth + 1))
        out.add(";".join(funcs[j] for j in rng.integers(0, n_functions, depth)))
    return sorted(out)


def fleet_items(start_ms: int, *, services: int = 4, instances: int = 5, duration_s: int = 600, step_s: int = 10,
                stacks_per_profile: int = 200, stack_pool: int = 2000, seed: int = 1) -> list[Item]:
    """A random fleet: every instance pushes one CPU profile every ``step_s`` seconds."""
    rng = np.random.default_rng(seed)
    pool = random_stack_table(rng, stack_pool, 300, 24)
    items = []
    for s in range(services):
        for i in range(instances):
            labels = {"service_name": f"svc-{s}", "instance": f"svc-{s}-{i}", "version": "1.0"}
            for t in range(start_ms, start_ms + duration_s * 1000, step_s * 1000):
                pick = rng.choice(len(pool), stacks_per_profile, replace=False)
                vals = rng.integers(1, 100, stacks_per_profile) * 10_000_000
                items.append(ingest_item(labels, CPU, t, profile_from_stacks(dict(zip((pool[j] for j in pick), vals.tolist(), strict=True)), CPU)))
    return items
