"""speedscope JSON (https://www.speedscope.app/file-format-schema.json).

Decoding contract (:func:`decode_speedscope`):

* The file is an object with ``shared.frames`` (``{name, file?, line?, col?}``) and
  ``profiles``; every profile is ``sampled`` (``samples``: stacks of frame indices, root
  first; ``weights``: one number per sample, or a single shared weight, or absent = 1) or
  ``evented`` (``events`` of ``{"type": "O"|"C", "frame", "at"}`` with non-decreasing
  ``at``; the time between consecutive events is charged to the stack open between them).
  Evented open/close events must nest: a ``C`` closes the innermost open frame, and every
  frame is closed by the end; otherwise :class:`ProfileFormatError`.
* Units map to sample types: ``none`` → ``samples:count``; ``nanoseconds``,
  ``microseconds``, ``milliseconds``, ``seconds`` → ``cpu:nanoseconds`` (converted and
  rounded to integer nanoseconds); ``bytes`` → ``alloc_space:bytes``. With
  ``sample_rate`` (Hz), ``none`` counts become CPU nanoseconds (``count × 10**9 //
  sample_rate``), as folded counts do.
* A profile with CPU time gets the period type ``cpu:nanoseconds`` (so it is stored as
  Pyroscope's ``process_cpu:cpu:nanoseconds:cpu:nanoseconds``) and, as its period, the
  sampling interval: ``10**9 // sample_rate`` for converted counts, else the most common
  weight of its sampled time profiles (py-spy writes ``seconds`` weights of ``1/rate``).
* All profiles are merged (values add up per stack); profiles of different unit kinds
  become separate sample types of one profile, in order of first appearance.
  ``profile_index`` selects a single profile instead.
* Limits: samples/events beyond ``limits.max_samples`` and frame names longer than
  ``limits.max_string_length`` raise; stacks deeper than ``limits.max_stack_depth`` are cut
  under :data:`TRUNCATED_FRAME` and counted. Invalid UTF-8 is replaced.

:func:`encode_speedscope` writes one ``sampled`` profile of one value column, valid
against the published schema, with the speedscope unit of the sample unit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import polars as pl

from fleetprof import __version__
from fleetprof.formats.errors import (
    DEFAULT_LIMITS,
    TRUNCATED_FRAME,
    Limits,
    ProfileFormatError,
    maybe_gunzip,
)
from fleetprof.formats.folded import truncate_depth
from fleetprof.model.merge import empty_profile
from fleetprof.model.profile import Profile, Stacks, ValueType, build, expand, positions

FMT = "speedscope"
SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
_INT64_MAX = (1 << 63) - 1
SAMPLES = ValueType("samples", "count")
CPU_NS = ValueType("cpu", "nanoseconds")
ALLOC_BYTES = ValueType("alloc_space", "bytes")
UNITS: dict[str, tuple[ValueType, int]] = {
    "none": (SAMPLES, 1),
    "nanoseconds": (CPU_NS, 1),
    "microseconds": (CPU_NS, 1_000),
    "milliseconds": (CPU_NS, 1_000_000),
    "seconds": (CPU_NS, 1_000_000_000),
    "bytes": (ALLOC_BYTES, 1),
}
"""speedscope unit → (sample type, factor to the sample type's unit)."""

_UNIT_OUT = {"nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


@dataclass
class _Part:
    """CSR stacks of one speedscope profile, indices into the shared frame table."""

    offsets: np.ndarray
    frames: np.ndarray
    values: np.ndarray
    vtype: ValueType
    period: int = 0
    """Sampling interval in ns of a sampled CPU-time profile (0: unknown)."""


def decode_speedscope(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    keep_lines: bool = False,
    profile_index: int | None = None,
    sample_rate: int | None = None,
) -> Profile:
    """Decode a speedscope file into a :class:`Profile` (see the module contract)."""
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 0 < sample_rate <= 10**9):
        raise ProfileFormatError(FMT, f"bad sampleRate {sample_rate!r}", "sampleRate")
    doc = _load(data, limits)
    try:
        return _decode_doc(doc, limits, keep_lines, profile_index, sample_rate)
    except ProfileFormatError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        raise ProfileFormatError(FMT, f"malformed document ({type(e).__name__}: {str(e)[:80]})") from None


def _load(data: bytes, limits: Limits) -> Any:
    raw = maybe_gunzip(bytes(data), FMT, limits)
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    try:
        return json.loads(text)
    except RecursionError:
        raise ProfileFormatError(FMT, "JSON nested too deeply") from None
    except ValueError as e:
        pos = getattr(e, "pos", None)
        raise ProfileFormatError(FMT, f"invalid JSON ({getattr(e, 'msg', e)})", f"char {pos}" if pos is not None else None) from None


def _decode_doc(doc: Any, limits: Limits, keep_lines: bool, profile_index: int | None, sample_rate: int | None = None) -> Profile:
    if not isinstance(doc, dict):
        raise ProfileFormatError(FMT, "top level is not an object")
    shared = doc.get("shared")
    profiles = doc.get("profiles")
    if not isinstance(shared, dict) or not isinstance(shared.get("frames"), list):
        raise ProfileFormatError(FMT, "missing shared.frames array", "shared.frames")
    if not isinstance(profiles, list):
        raise ProfileFormatError(FMT, "missing profiles array", "profiles")
    names, files, lines = _frames(shared["frames"], limits, keep_lines)
    indices = range(len(profiles))
    if profile_index is not None:
        if not 0 <= profile_index < len(profiles):
            raise ProfileFormatError(FMT, f"no profile {profile_index} (file has {len(profiles)})", "profiles")
        indices = range(profile_index, profile_index + 1)
    parts = [_profile(profiles[i], i, len(names), limits, sample_rate) for i in indices]
    return _assemble(parts, names, files, lines, limits, keep_lines)


def _frames(frames: list[Any], limits: Limits, keep_lines: bool) -> tuple[list[str], list[str], list[int]]:
    """Name, file and line of every shared frame (one Python step per frame)."""
    names: list[str] = []
    files: list[str] = []
    lines: list[int] = []
    for i, f in enumerate(frames):
        where = f"shared.frames[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise ProfileFormatError(FMT, "frame without a string name", where)
        file = f.get("file", "")
        if not isinstance(file, str):
            raise ProfileFormatError(FMT, "frame file is not a string", where + ".file")
        for s, field in ((f["name"], "name"), (file, "file")):
            if len(s) > limits.max_string_length:
                raise ProfileFormatError(FMT, f"{field} longer than the {limits.max_string_length}-byte limit", where)
        line = f.get("line", 0)
        if keep_lines and isinstance(line, int | float) and not isinstance(line, bool) and math.isfinite(line):
            line = int(line) if 0 <= line < 2**62 else 0
        else:
            line = 0
        names.append(f["name"])
        files.append(file)
        lines.append(line)
    return names, files, lines


def _profile(p: Any, i: int, n_frames: int, limits: Limits, sample_rate: int | None = None) -> _Part:
    where = f"profiles[{i}]"
    if not isinstance(p, dict):
        raise ProfileFormatError(FMT, "profile is not an object", where)
    unit = p.get("unit", "none")
    if unit not in UNITS:
        raise ProfileFormatError(FMT, f"unknown unit {str(unit)[:40]!r}", where + ".unit")
    vtype, factor = UNITS[unit]
    if unit == "none" and sample_rate:
        vtype, factor = CPU_NS, 10**9 // sample_rate
    kind = p.get("type")
    if kind == "sampled":
        offsets, frames, weights = _sampled(p, where, n_frames, limits)
    elif kind == "evented":
        offsets, frames, weights = _evented(p, where, n_frames, limits)
    else:
        raise ProfileFormatError(FMT, f"unknown profile type {str(kind)[:40]!r}", where + ".type")
    values = _scale(weights, factor, where)
    period = 0
    if vtype == CPU_NS and kind == "sampled":
        period = factor if unit == "none" else _common_weight(values)
    return _Part(offsets, frames, values, vtype, period)


def _common_weight(values: np.ndarray) -> int:
    """The most common positive value (the sampling interval of a sampled profile), 0 if none."""
    pos = values[values > 0]
    if not len(pos):
        return 0
    uniq, counts = np.unique(pos, return_counts=True)
    return int(uniq[int(np.argmax(counts))])


def _int_array(values: Sequence[Any], where: str) -> np.ndarray:
    """int64 array of JSON integers (integral floats allowed); raises otherwise."""
    types = set(map(type, values))
    if not types <= {int, float}:
        raise ProfileFormatError(FMT, "expected integers", where)
    arr = np.asarray(values, dtype=np.float64) if float in types else None
    if arr is not None:
        if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)) or np.any(np.abs(arr) > 2**53):
            raise ProfileFormatError(FMT, "expected integers", where)
        return arr.astype(np.int64)
    try:
        return np.asarray(values, dtype=np.int64) if len(values) else np.zeros(0, dtype=np.int64)
    except OverflowError:
        raise ProfileFormatError(FMT, "integer out of range", where) from None


def _number_array(values: Sequence[Any], where: str) -> np.ndarray:
    """float64 array of finite JSON numbers."""
    if not set(map(type, values)) <= {int, float}:
        raise ProfileFormatError(FMT, "expected numbers", where)
    try:
        arr = np.asarray(values, dtype=np.float64) if len(values) else np.zeros(0, dtype=np.float64)
    except OverflowError:
        raise ProfileFormatError(FMT, "number out of range", where) from None
    if not np.all(np.isfinite(arr)):
        raise ProfileFormatError(FMT, "non-finite number", where)
    return arr


def _check_frames(frames: np.ndarray, n_frames: int, where: str) -> None:
    if len(frames) and (int(frames.min()) < 0 or int(frames.max()) >= n_frames):
        bad = int(np.flatnonzero((frames < 0) | (frames >= n_frames))[0])
        raise ProfileFormatError(FMT, f"frame index {int(frames[bad])} out of range (0..{n_frames - 1})", where)


def _sampled(p: dict[str, Any], where: str, n_frames: int, limits: Limits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    samples = p.get("samples")
    if not isinstance(samples, list):
        raise ProfileFormatError(FMT, "sampled profile without a samples array", where + ".samples")
    if len(samples) > limits.max_samples:
        raise ProfileFormatError(FMT, f"{len(samples)} samples exceed the limit of {limits.max_samples}", where + ".samples")
    if not set(map(type, samples)) <= {list}:
        raise ProfileFormatError(FMT, "a sample is not an array", where + ".samples")
    lengths = np.fromiter(map(len, samples), dtype=np.int64, count=len(samples))
    offsets = np.zeros(len(samples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat: list[Any] = list(chain.from_iterable(samples))
    frames = _int_array(flat, where + ".samples")
    _check_frames(frames, n_frames, where + ".samples")
    weights_raw = p.get("weights")
    if weights_raw is None or (isinstance(weights_raw, list) and len(weights_raw) == 0):
        weights = np.ones(len(samples), dtype=np.float64)
    elif not isinstance(weights_raw, list):
        raise ProfileFormatError(FMT, "weights is not an array", where + ".weights")
    else:
        weights = _number_array(weights_raw, where + ".weights")
        if len(weights) == 1 and len(samples) != 1:
            weights = np.full(len(samples), weights[0])
        elif len(weights) != len(samples):
            raise ProfileFormatError(FMT, f"{len(weights)} weights for {len(samples)} samples", where + ".weights")
    return offsets, frames, weights


def _evented(p: dict[str, Any], where: str, n_frames: int, limits: Limits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacks and durations of an evented profile (vectorised: one step per depth level)."""
    events = p.get("events")
    if not isinstance(events, list):
        raise ProfileFormatError(FMT, "evented profile without an events array", where + ".events")
    if len(events) > limits.max_samples:
        raise ProfileFormatError(FMT, f"{len(events)} events exceed the limit of {limits.max_samples}", where + ".events")
    if not set(map(type, events)) <= {dict}:
        raise ProfileFormatError(FMT, "an event is not an object", where + ".events")
    if not events:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    try:
        kinds = list(map(itemgetter("type"), events))
        frames = _int_array(list(map(itemgetter("frame"), events)), where + ".events[].frame")
        at = _number_array(list(map(itemgetter("at"), events)), where + ".events[].at")
    except KeyError as e:
        raise ProfileFormatError(FMT, f"event without {e}", where + ".events") from None
    _check_frames(frames, n_frames, where + ".events[].frame")
    if not set(map(type, kinds)) <= {str}:
        raise ProfileFormatError(FMT, "event type is not a string", where + ".events")
    kind = pl.Series(kinds, dtype=pl.Utf8)
    is_open = (kind == "O").to_numpy()
    is_close = (kind == "C").to_numpy()
    bad = np.flatnonzero(~(is_open | is_close))
    if len(bad):
        raise ProfileFormatError(FMT, f"unknown event type {str(kinds[bad[0]])[:20]!r}", f"{where}.events[{bad[0]}]")
    back = np.flatnonzero(np.diff(at) < 0)
    if len(back):
        raise ProfileFormatError(FMT, "events out of order", f"{where}.events[{back[0] + 1}].at")
    depth = np.cumsum(np.where(is_open, 1, -1))
    neg = np.flatnonzero(depth < 0)
    if len(neg):
        raise ProfileFormatError(FMT, "close event without an open frame", f"{where}.events[{neg[0]}]")
    if depth[-1] != 0:
        raise ProfileFormatError(FMT, f"{int(depth[-1])} frames never closed", where + ".events")
    return _evented_stacks(frames, at, is_open, depth, where)


def _evented_stacks(
    frames: np.ndarray, at: np.ndarray, is_open: np.ndarray, depth: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(frames)
    idx = np.arange(n)
    cur = np.full(n, -1, dtype=np.int64)  # open event whose stack is current after event k
    parent = np.full(n, -1, dtype=np.int64)  # for open events: the enclosing open event
    uid = np.full(n, -1, dtype=np.int64)  # for open events: dense id of its stack path
    prev_opens = np.zeros(0, dtype=np.int64)
    next_uid = 0
    mismatch: tuple[int, int] | None = None  # earliest (close event, open event it met)
    for level in range(1, int(depth.max()) + 1):
        opens = idx[is_open & (depth == level)]
        at_level = idx[depth == level]
        cur[at_level] = opens[np.searchsorted(opens, at_level, side="right") - 1]
        closes = idx[~is_open & (depth == level - 1)]
        if len(closes):
            match = opens[np.searchsorted(opens, closes, side="right") - 1]
            wrong = np.flatnonzero(frames[match] != frames[closes])
            if len(wrong) and (mismatch is None or closes[wrong[0]] < mismatch[0]):
                mismatch = (int(closes[wrong[0]]), int(match[wrong[0]]))
        if level > 1:
            parent[opens] = prev_opens[np.searchsorted(prev_opens, opens, side="right") - 1]
            puid = uid[parent[opens]]
        else:
            puid = np.full(len(opens), -1, dtype=np.int64)
        _, first, inv = np.unique(np.stack([puid, frames[opens]], axis=1), axis=0, return_index=True, return_inverse=True)
        uid[opens] = next_uid + inv.reshape(-1)
        next_uid += len(first)
        prev_opens = opens
    if mismatch is not None:
        k, o = mismatch
        raise ProfileFormatError(FMT, f"close of frame {int(frames[k])} while frame {int(frames[o])} is open", f"{where}.events[{k}]")
    dt = np.diff(at)
    charged = cur[:-1] >= 0
    per_uid = np.bincount(uid[cur[:-1][charged]], weights=dt[charged], minlength=next_uid)
    rep = np.full(next_uid, -1, dtype=np.int64)
    opens_all = idx[is_open]
    rep[uid[opens_all[::-1]]] = opens_all[::-1]  # first open event of each path
    keep = np.flatnonzero(per_uid > 0)
    offsets, flat = _paths(rep[keep], parent, frames, depth)
    return offsets, flat, per_uid[keep]


def _paths(leaves: np.ndarray, parent: np.ndarray, frames: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR frame paths (root first) of open events ``leaves``, walking ``parent`` links
    one level at a time."""
    lengths = depth[leaves].astype(np.int64)
    offsets = np.zeros(len(leaves) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    cur = leaves.astype(np.int64)
    pos = offsets[1:] - 1
    while len(cur):
        out[pos] = frames[cur]
        cur = parent[cur]
        pos = pos - 1
        alive = cur >= 0
        cur, pos = cur[alive], pos[alive]
    return offsets, out


def _assemble(
    parts: list[_Part], names: list[str], files: list[str], lines: list[int], limits: Limits, keep_lines: bool
) -> Profile:
    """One profile from every part: a value column per distinct sample type."""
    vtypes: list[ValueType] = []
    for part in parts:
        if part.vtype not in vtypes:
            vtypes.append(part.vtype)
    if not vtypes:
        vtypes = [SAMPLES]
    n = sum(len(part.offsets) - 1 for part in parts)
    if n == 0:
        return empty_profile(vtypes, default_sample_type=vtypes[0].type)
    values = np.zeros((n, len(vtypes)), dtype=np.int64)
    offs: list[np.ndarray] = []
    row = 0
    base = 0
    for part in parts:
        k = len(part.offsets) - 1
        values[row : row + k, vtypes.index(part.vtype)] = part.values
        offs.append(part.offsets[1:] + base)
        base += int(part.offsets[-1])
        row += k
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), *offs])
    frames = np.concatenate([part.frames for part in parts]).astype(np.int64)
    if float(values.astype(np.float64).sum(axis=0).max()) > _INT64_MAX:
        raise ProfileFormatError(FMT, "total overflows int64")
    offsets, frames, truncated = truncate_depth(offsets, frames, limits.max_stack_depth, marker=len(names))
    if truncated:
        names, files, lines = [*names, TRUNCATED_FRAME], [*files, ""], [*lines, 0]
    stacks = Stacks(names=names, files=files, lines=lines if keep_lines else None, offsets=offsets, frames=frames, values=values)
    return build(stacks, vtypes, truncated_stacks=truncated, default_sample_type=vtypes[0].type, **_period(parts, vtypes))


def _period(parts: list[_Part], vtypes: list[ValueType]) -> dict[str, Any]:
    """``period_type``/``period`` of a profile with CPU time (module contract), else nothing."""
    if CPU_NS not in vtypes:
        return {}
    periods = [part.period for part in parts if part.vtype == CPU_NS and part.period > 0]
    return {"period_type": CPU_NS, "period": periods[0] if periods else 0}


def _scale(weights: np.ndarray, factor: int, where: str) -> np.ndarray:
    """Weights in the sample type's unit, rounded to int64; raises on negatives/overflow."""
    if len(weights) and float(weights.min()) < 0:
        raise ProfileFormatError(FMT, "negative weight", where)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.rint(weights * factor)
        total = float(scaled.sum()) if len(scaled) else 0.0
    if not math.isfinite(total) or total > _INT64_MAX / 2:
        raise ProfileFormatError(FMT, "weights overflow int64", where)
    return scaled.astype(np.int64)


def encode_speedscope(profile: Profile, type_index: int | None = None, *, name: str | None = None) -> bytes:
    """A speedscope file with one ``sampled`` profile of value column ``type_index``
    (default: the profile's default type): one sample per distinct stack (labels summed),
    weights in the sample unit (speedscope unit ``none`` for counts and unknown units)."""
    ti = profile.type_index() if type_index is None else type_index
    st = profile.sample_types[ti]
    col = profile.value_cols[ti]
    per_node = (
        profile.samples.group_by("node_id")
        .agg(pl.col(col).sum().alias("v0"))
        .filter(pl.col("v0") != 0)
        .sort("node_id")
        .with_columns(pl.lit(0, dtype=pl.UInt64).alias("labels"))
        .select("node_id", "labels", "v0")
    )
    single = replace(profile, sample_types=(st,), samples=per_node)
    ex = expand(single)
    weights = per_node["v0"]
    frames = profile.frames
    used = np.unique(ex.frame_ids) if len(ex.frame_ids) else np.zeros(0, dtype=np.uint64)
    frames = frames.join(pl.DataFrame({"frame_id": used}, schema={"frame_id": pl.UInt64}), on="frame_id", how="semi").sort("frame_id")
    fidx = positions(frames["frame_id"].to_numpy(), ex.frame_ids)
    if np.any(fidx < 0):
        raise ValueError("profile stacks reference frames missing from the frame table")
    lengths = np.diff(ex.offsets)
    sid = np.repeat(np.arange(len(lengths)), lengths)
    stacks = (
        pl.DataFrame({"s": sid, "f": fidx}, schema={"s": pl.Int64, "f": pl.Int64})
        .group_by("s", maintain_order=True)
        .agg(pl.col("f").cast(pl.Utf8).str.join(","))
    )
    rows = pl.DataFrame({"s": np.arange(len(lengths), dtype=np.int64)}).join(stacks, on="s", how="left", maintain_order="left")
    samples_txt = rows.select(pl.concat_str([pl.lit("["), pl.col("f").fill_null(""), pl.lit("]")]).str.join(",")).item() if len(rows) else ""
    weights_txt = weights.cast(pl.Utf8).str.join(",").item() if len(weights) else ""
    frame_objs = [_frame_obj(n, f, ln) for n, f, ln in frames.select("name", "file", "line").iter_rows()]
    unit = st.unit if st.unit in _UNIT_OUT else "none"
    title = name or str(st)
    total = int(weights.sum()) if len(weights) else 0
    head = {
        "$schema": SCHEMA_URL,
        "exporter": f"fleetprof@{__version__}",
        "name": title,
        "activeProfileIndex": 0,
        "shared": {"frames": frame_objs},
    }
    prof = (
        '{"type":"sampled","name":' + json.dumps(title) + ',"unit":' + json.dumps(unit)
        + f',"startValue":0,"endValue":{total},"samples":[{samples_txt}],"weights":[{weights_txt}]}}'
    )
    return (json.dumps(head, ensure_ascii=False)[:-1] + ',"profiles":[' + prof + "]}").encode("utf-8")


def _frame_obj(name: str, file: str, line: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if file:
        out["file"] = file
    if line:
        out["line"] = int(line)
    return out


__all__ = ["SCHEMA_URL", "UNITS", "decode_speedscope", "encode_speedscope"]
