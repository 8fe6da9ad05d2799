"""Fast synthetic L0 data for the compaction benchmarks (vectorised, seeded).

A pool of random stacks is interned once; every (instance, time) profile picks
``stacks_per_profile`` pool stacks with random CPU values, so segment tables are built with
numpy, not one :class:`Profile` per push. Each L0 segment holds ``per_segment_s`` seconds of
every instance of one service (as a 1-s flush of a busy service would, batched).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fleetprof.metastore.index import SegmentEntry
from fleetprof.model import series_id
from fleetprof.segment.format import SegmentBatch, encode_segment
from fleetprof.segment.keys import new_segment_id, segment_key
from workers import synth

CPU = synth.CPU
T0 = 1_795_132_800_000  # 2026-11-20T00:00Z


def pool(seed: int = 1, n_stacks: int = 3000) -> tuple[list[str], object]:
    """Stack strings and the profile interning them (leaf node id per stack in order)."""
    rng = np.random.default_rng(seed)
    stacks = synth.random_stack_table(rng, n_stacks, 400, 28)
    prof = synth.profile_from_stacks(dict.fromkeys(stacks, 1), CPU)
    return stacks, prof


def leaf_ids(stacks: list[str], prof: object) -> np.ndarray:
    from fleetprof.model.profile import expand

    ex = expand(prof)  # type: ignore[arg-type]
    names = {}
    # map each sample row back to its stack string via its leaf: build via folded order
    fr = prof.frames  # type: ignore[attr-defined]
    lookup = dict(zip(fr["frame_id"].to_list(), fr["name"].to_list(), strict=True))
    for i, leaf in enumerate(ex.samples["node_id"].to_list()):
        names[";".join(lookup[f] for f in ex.frame_ids[ex.offsets[i]:ex.offsets[i + 1]].tolist())] = leaf
    return np.array([names[s] for s in stacks], dtype=np.uint64)


def write_fleet(store, index, tenant: str = "bench", *, services: int = 10, instances: int = 10, hours: int = 1,
                step_s: int = 10, stacks_per_profile: int = 50, per_segment_s: int = 60, seed: int = 1,
                mixed: bool = False) -> dict[str, int]:
    """Write L0 segments; return counts (segments, sample rows, profiles). Each segment holds
    one service (``mixed=False``) or, like the server's segment writer, every service of its
    ``per_segment_s`` window (``mixed=True``: one service group per bucket). Segments are
    written as they are made (memory stays one segment's worth)."""
    stacks, prof = pool(seed)
    leaves = leaf_ids(stacks, prof)
    rng = np.random.default_rng(seed + 1)
    counts = {"segments": 0, "rows": 0, "profiles": 0}
    labels = [[{"service_name": f"svc-{s}", "instance": f"svc-{s}-{i}", "version": "1.0"} for i in range(instances)]
              for s in range(services)]
    sids = [np.array([series_id(lab) for lab in labs], dtype=np.uint64) for labs in labels]
    lab_dfs = [pl.DataFrame([(int(sid), k, v) for sid, lab in zip(ss, labs, strict=True) for k, v in lab.items()],
                            schema={"series_id": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}, orient="row")
               for ss, labs in zip(sids, labels, strict=True)]
    starts = range(T0, T0 + hours * 3_600_000, per_segment_s * 1000)

    def samples_of(s: int, t0: int) -> pl.DataFrame:
        times = np.arange(t0, t0 + per_segment_s * 1000, step_s * 1000, dtype=np.int64)
        n_prof = len(times) * instances
        k = stacks_per_profile
        pick = rng.integers(0, len(stacks), n_prof * k)
        counts["profiles"] += n_prof
        return pl.DataFrame({
            "series_id": np.repeat(np.tile(sids[s], len(times)), k),
            "profile_type": [CPU] * (n_prof * k),
            "time_ms": np.repeat(np.repeat(times, instances), k),
            "node_id": leaves[pick],
            "value": rng.integers(1, 50, n_prof * k) * 10_000_000,
        }).group_by("series_id", "profile_type", "time_ms", "node_id").agg(pl.col("value").sum())

    def write(t0: int, svcs: list[int], parts: list[pl.DataFrame]) -> None:
        samples = pl.concat(parts)
        batch = SegmentBatch(pl.concat([lab_dfs[s] for s in svcs]), samples, prof.nodes, prof.frames)  # type: ignore[attr-defined]
        created = int(t0 + per_segment_s * 1000)
        data = encode_segment(batch, tenant=tenant, level=0, created_ms=created)
        sid = new_segment_id(created)
        e = SegmentEntry(tenant=tenant, segment_id=sid, level=0, services=tuple(sorted(f"svc-{s}" for s in svcs)),
                         profile_types=(CPU,), min_time_ms=t0, max_time_ms=t0 + per_segment_s * 1000 - step_s * 1000,
                         key=segment_key(tenant, 0, sid, t0), bytes=len(data), samples=samples.height, created_ms=created,
                         series=tuple(lab for s in svcs for lab in labels[s]))
        store.put(e.key, data)
        index.add(e)
        counts["segments"] += 1
        counts["rows"] += samples.height

    if mixed:
        for t0 in starts:
            write(t0, list(range(services)), [samples_of(s, t0) for s in range(services)])
    else:
        for s in range(services):
            for t0 in starts:
                write(t0, [s], [samples_of(s, t0)])
    return counts


def pprof_gzip_bytes_per_profile(n: int = 100, stacks_per_profile: int = 50, seed: int = 1) -> float:
    """Mean size of one gzipped pprof holding one (instance, time) profile of this fleet."""
    from fleetprof.formats.pprof_encode import encode_pprof

    stacks, _prof = pool(seed)
    rng = np.random.default_rng(seed + 2)
    sizes = []
    for _ in range(n):
        pick = rng.choice(len(stacks), stacks_per_profile, replace=False)
        vals = rng.integers(1, 50, stacks_per_profile) * 10_000_000
        p = synth.profile_from_stacks({stacks[j]: int(v) for j, v in zip(pick, vals, strict=True)}, CPU)
        sizes.append(len(encode_pprof(p, compress=True)))
    return float(np.mean(sizes))
