"""pprof decoder: ``profile.proto`` bytes (gzipped or raw) → canonical :class:`Profile`.

Contract (:func:`decode_pprof`):

* gzip is detected by its magic bytes, never by name; decompression is bounded by
  ``limits.max_decompressed_bytes``.
* Every sample type becomes a value column (``v0`` … in ``sample_type`` order);
  ``default_sample_type``, ``period_type``, ``period``, ``time_nanos``, ``duration_nanos``
  and ``comment`` are carried over as metadata (a ``default_sample_type`` that names no
  sample type is dropped).
* A location expands to one frame per ``Line``; the lines of one location are
  innermost-first on the wire (the last line is the caller), so they are reversed to
  get root-first order. A location without lines (or a line without a function) is
  named from its mapping's file basename and its address (``libfoo.so 0x1a2b``), just the
  address without a mapping, ``<unknown>`` without either; its file is the mapping file.
* Frames are (function name, file); the line number is kept only with ``keep_lines``.
* Every string-table and id reference is validated: a bad one raises
  :class:`ProfileFormatError` naming the field (``sample[12].location_id``,
  ``location[3].line[0].function_id`` …). So do a wrong value count, duplicate or zero ids,
  malformed protobuf and a string table whose first entry is not ``""``.
* ``drop_frames`` / ``keep_frames`` follow google/pprof's ``Profile.Prune``: the regexes
  are anchored (``^(…)$``) and matched against the simplified function name (argument
  list removed); scanning a stack from the root, after the first frame that does not
  match, the first matching location and everything below it (toward the leaf) are
  removed — unless the match is an inlined caller inside the location, in which case
  only the lines below the match are removed. ``keep_frames`` exempts matches.
* Sample labels become label sets: string labels ``key → value``; numeric labels
  ``key → "<num> <unit>"`` (``"<num>"`` without a unit). A set holds each (key, value)
  pair once: a pair repeated within one sample counts once.
* Stacks deeper than ``limits.max_stack_depth`` keep their leaf-most frames below one
  :data:`TRUNCATED_FRAME` root frame (``max_stack_depth`` frames in all); the number of
  such samples is ``profile.truncated_stacks``.
* Invalid UTF-8 is replaced (U+FFFD); strings longer than ``limits.max_string_length``
  and more samples than ``limits.max_samples`` are errors.
* Go generic type parameters are dropped from function names as Pyroscope drops them at
  ingest (Go's profiles name any instance's shapes, golang/go#64528):
  ``[go.shape.`` up to the name's last ``]`` becomes ``[...]``, so
  ``pkg.Map[go.shape.string,go.shape.int].Get`` is ``pkg.Map[...].Get``; frames that
  become equal are merged.

Speed: upb parses the profile's small fields with the tables kept as raw bytes
(``ProfileRawView`` in ``pprof_view.proto``). Compiled numba scans (:mod:`.pprof_scan`)
then work straight on the profile bytes: one top-level pass finds the sample, location and
function messages; the samples are decoded and identical stacks summed; the function and
location tables become interned frames (:func:`_locations_bulk`); location ids are resolved
and stacks expanded to frames. What the scans decline goes the exact way, which names the
offending field: malformed samples through the numpy field walk (:func:`_samples`);
locations without lines, nameless functions, ``drop_frames`` or any bad reference through a
Python loop per location on upb's messages (:func:`_locations`). Python loops also run once
per mapping and distinct label set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
from google.protobuf.message import DecodeError

from fleetprof.formats.errors import (
    DEFAULT_LIMITS,
    TRUNCATED_FRAME,
    Limits,
    ProfileFormatError,
    maybe_gunzip,
)
from fleetprof.formats.pprof_scan import (
    all_known,
    dedupe_stacks,
    label_sets,
    label_values,
    resolve_frames,
    scan_locations,
    scan_records,
    scan_samples,
    table_spans,
)
from fleetprof.formats.pprof_strings import StringTable, string_table
from fleetprof.formats.pprof_strings import from_bytes as strings_from_bytes
from fleetprof.formats.proto import pprof_view_pb2, profile_pb2
from fleetprof.model.hashing import frame_ids_utf8, labels_ids_utf8
from fleetprof.model.profile import (
    TRIE_MAX_ELEMENTS,
    Profile,
    Stacks,
    ValueType,
    build,
    labels_table,
    pick,
)
from fleetprof.model.trie import expand_locations

FMT = "pprof"

_U64 = np.uint64
_MAX_WALK_ITER = 24
"""Field positions decoded in bulk per message; messages with more fields fall back to upb."""


def decode_pprof(data: bytes, *, limits: Limits = DEFAULT_LIMITS, keep_lines: bool = False) -> Profile:
    """Decode pprof bytes into a canonical profile (see the module contract)."""
    stacks, sample_types, meta = decode_pprof_stacks(data, limits=limits, keep_lines=keep_lines, expand=False)
    return build(stacks, sample_types, **meta)


def decode_pprof_stacks(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    keep_lines: bool = False,
    group: bool = True,
    expand: bool = True,
) -> tuple[Stacks, tuple[ValueType, ...], dict[str, Any]]:
    """:func:`decode_pprof` without its final :func:`~fleetprof.model.profile.build`: the
    same checks and errors, and ``(stacks, sample_types, meta)`` such that
    ``build(stacks, sample_types, **meta)`` is the decoded profile (callers may build many
    profiles' stacks at once, e.g. the server's segment writer). ``group=False`` skips
    summing identical stacks here (one stack per sample; ``build`` sums them anyway), which
    is cheaper when the stacks are built later in a large batch. ``expand=False`` may
    return the stacks in pprof's own shape (``Stacks.locations``: location indices, leaf
    first, one stack per sample) when nothing needs the frames themselves (no
    ``drop_frames``, no stack over the depth limit) and they are few enough for
    ``build``'s trie, which walks that shape directly."""
    raw = maybe_gunzip(bytes(data) if not isinstance(data, bytes) else data, FMT, limits)
    if not raw:
        raise ProfileFormatError(FMT, "empty input")
    view = _parse_view(raw, pprof_view_pb2.ProfileRawView())
    if len(view.sample) > limits.max_samples:
        raise ProfileFormatError(FMT, f"{len(view.sample)} samples exceed the {limits.max_samples}-sample limit", "sample")
    buf = np.frombuffer(raw, dtype=np.uint8)
    spans = table_spans(buf, max(len(view.sample), len(view.location), len(view.function), len(view.string_table)))
    st = _Strings(_string_table(view, buf, spans, limits))
    sample_types = tuple(
        ValueType(st.get(v.type, f"sample_type[{i}].type"), st.get(v.unit, f"sample_type[{i}].unit"))
        for i, v in enumerate(view.sample_type)
    )
    period_type = None
    if view.HasField("period_type"):
        period_type = ValueType(st.get(view.period_type.type, "period_type.type"), st.get(view.period_type.unit, "period_type.unit"))
    default = st.get(view.default_sample_type, "default_sample_type") or None
    if default is not None and default not in {t.type for t in sample_types}:
        default = None
    comments = tuple(st.get(c, f"comment[{i}]") for i, c in enumerate(view.comment))
    drop_rx = _anchored(st.get(view.drop_frames, "drop_frames"), "drop_frames")
    keep_rx = _anchored(st.get(view.keep_frames, "keep_frames"), "keep_frames")

    locs = _locations(view, raw, (buf, spans), st, keep_lines, drop_rx, keep_rx)
    if _GO_SHAPE_MARK in raw:
        locs = _without_go_shapes(locs)
    samples = _scanned_samples(buf, spans, view, len(sample_types), locs) or _samples(view, len(sample_types), limits, locs)
    label_index, label_set_ids, labels = _label_sets(samples, st)
    if not expand and drop_rx is None and samples.frames <= TRIE_MAX_ELEMENTS and samples.deepest <= limits.max_stack_depth:
        # small enough for the trie, which then needs neither dedupe nor expansion
        stacks = Stacks(
            names=locs.names,
            files=locs.files,
            offsets=samples.loc_offsets,
            frames=samples.loc_index,
            values=samples.values,
            lines=locs.lines if keep_lines else None,
            label_index=label_index,
            label_set_ids=label_set_ids,
            labels=labels,
            frame_ids=locs.frame_ids,
            locations=(locs.frame_offsets, locs.frames),
        )
        truncated = 0
    else:
        stacks, truncated = _frame_stacks(samples, locs, (label_index, label_set_ids, labels), drop_rx, limits, keep_lines, group)
    meta: dict[str, Any] = {
        "period_type": period_type,
        "period": int(view.period),
        "default_sample_type": default,
        "time_nanos": int(view.time_nanos),
        "duration_nanos": int(view.duration_nanos),
        "truncated_stacks": truncated,
        "comments": comments,
    }
    return stacks, sample_types, meta


def _frame_stacks(
    samples: _Samples, locs: _Locations, labelled, drop_rx, limits: Limits, keep_lines: bool, group: bool
) -> tuple[Stacks, int]:
    """Stacks of frames, root first (drop_frames and the depth limit applied) and the
    number of samples whose stacks were truncated; ``labelled`` is :func:`_label_sets`'s."""
    label_index, label_set_ids, labels = labelled
    # identical (stack, label set) samples are summed first: everything below is per stack
    if group:
        loc_offsets, loc_index, label_index, values, weight = _dedupe(samples.loc_offsets, samples.loc_index, label_index, samples.values)
    else:
        loc_offsets, loc_index, values = samples.loc_offsets, samples.loc_index, samples.values
        weight = np.ones(len(loc_offsets) - 1, dtype=np.int64)
    if drop_rx is None:
        offsets, frames = expand_locations(loc_offsets, loc_index, locs.frame_offsets, locs.frames)
    else:
        offsets, elems = _reverse_segments(loc_offsets, loc_index)  # root first
        offsets, elems = _prune(offsets, elems, locs.prune, locs.prune_beneath)
        offsets, frames = expand_locations(offsets, elems, locs.frame_offsets, locs.frames, leaf_first=False)
    names, files, lines, ids = locs.names, locs.files, locs.lines, locs.frame_ids
    offsets, frames, over = _truncate(offsets, frames, limits.max_stack_depth, len(names))
    truncated = int(weight[over].sum()) if over is not None else 0
    if truncated:
        names, files, lines = [*names, TRUNCATED_FRAME], [*files, ""], [*lines, 0]
        ids = None
    stacks = Stacks(
        names=names,
        files=files,
        offsets=offsets,
        frames=frames,
        values=values,
        lines=lines if keep_lines else None,
        label_index=label_index,
        label_set_ids=label_set_ids,
        labels=labels,
        frame_ids=ids,
    )
    return stacks, truncated


# ---------------------------------------------------------------------------------------
# strings


def _string_table(view: pprof_view_pb2.ProfileRawView, buf: np.ndarray, spans, limits: Limits) -> StringTable:
    """The string table, gathered from the wire spans (or, when the compiled walk declined
    the top level, from upb's entries); its first entry must be empty and none too long."""
    if spans is not None and len(spans[3][0]) == len(view.string_table):
        starts, ends = spans[3]
        _check_string_lengths(ends - starts, limits)
        return string_table(buf, starts, ends)
    entries = list(view.string_table)
    _check_string_lengths(np.fromiter(map(len, entries), dtype=np.int64, count=len(entries)), limits)
    return strings_from_bytes(entries)


def _check_string_lengths(lengths: np.ndarray, limits: Limits) -> None:
    if not len(lengths) or lengths[0] != 0:
        raise ProfileFormatError(FMT, 'the first string-table entry must be ""', "string_table[0]")
    if lengths.max() > limits.max_string_length:
        i = int(np.argmax(lengths > limits.max_string_length))
        raise ProfileFormatError(FMT, f"string of {int(lengths[i])} bytes exceeds the {limits.max_string_length}-byte limit", f"string_table[{i}]")


class _Strings:
    __slots__ = ("table", "n", "utf8")

    def __init__(self, utf8: StringTable) -> None:
        self.utf8 = utf8
        self.table = utf8.texts
        self.n = len(utf8.texts)

    def get(self, idx: int, where: str) -> str:
        if 0 <= idx < self.n:
            return self.table[idx]
        raise ProfileFormatError(FMT, f"string index {idx} out of range (table has {self.n})", where)


def _anchored(pattern: str, where: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(f"(?:{pattern})\\Z")
    except (re.error, RecursionError, OverflowError) as e:
        raise ProfileFormatError(FMT, f"bad regular expression ({e})", where) from None


_RESERVED = ("(anonymous namespace)", "operator()")


def simplify_func(name: str) -> str:
    """pprof's function-name simplification for drop/keep matching: strip a leading ``.``
    (PPC64 ELFv1) and the argument list (from the first ``(`` that does not start a
    reserved name such as ``(anonymous namespace)``)."""
    s = name[1:] if name.startswith(".") else name
    i = 0
    while True:
        j = s.find("(", i)
        if j < 0:
            return s
        for res in _RESERVED:
            k = res.index("(")
            if s.startswith(res, j - k) and j - k >= 0:
                i = j - k + len(res)
                break
        else:
            return s[:j] if j > 0 else s


# ---------------------------------------------------------------------------------------
# mappings, functions, locations (one Python loop per entity: fine, not per sample)


@dataclass
class _Locations:
    ids: np.ndarray  # uint64, location i's id
    frame_offsets: np.ndarray  # int64 (L+1): location i's frames (root first) are frames[o[i]:o[i+1]]
    frames: np.ndarray  # int64 indices into names/files/lines
    names: list[str]
    files: list[str]
    lines: list[int]
    prune: np.ndarray  # bool per location (drop_frames: whole location matched)
    prune_beneath: np.ndarray  # bool per location (matched somewhere in it)
    frame_ids: np.ndarray | None = None  # ids of names/files/lines, when hashed here


def _parse_view(raw: bytes, view: Any) -> Any:
    try:
        view.ParseFromString(raw)
    except (DecodeError, RecursionError, ValueError) as e:
        raise ProfileFormatError(FMT, f"not a valid profile.proto message ({e})") from None
    return view


def _locations(view, raw: bytes, scanned, st: _Strings, keep_lines: bool, drop_rx, keep_rx) -> _Locations:
    table = st.table
    nstr = st.n
    mappings: dict[int, tuple[str, str]] = {}
    positional = _all_zero_ids(view.mapping)
    for i, m in enumerate(view.mapping):
        mid = i + 1 if positional else m.id
        if mid == 0:
            raise ProfileFormatError(FMT, "mapping id must be non-zero", f"mapping[{i}].id")
        if mid in mappings:
            raise ProfileFormatError(FMT, f"duplicate mapping id {mid}", f"mapping[{i}].id")
        fname = st.get(m.filename, f"mapping[{i}].filename")
        st.get(m.build_id, f"mapping[{i}].build_id")
        base = fname.rsplit("/", 1)[-1] if fname else ""
        mappings[mid] = (base, fname)
    if isinstance(view, pprof_view_pb2.ProfileRawView):
        bulk = _locations_bulk(*scanned, st, keep_lines, mappings) if drop_rx is None else None
        if bulk is not None:
            return bulk
        # anything unusual: the per-location loop below, on upb's messages (exact errors)
        view = _parse_view(raw, pprof_view_pb2.ProfileView())
    functions: dict[int, tuple[str, str]] = {}
    positional = _all_zero_ids(view.function)
    for i, f in enumerate(view.function):
        fid, n, sn, fn = (i + 1 if positional else f.id), f.name, f.system_name, f.filename
        if fid == 0:
            raise ProfileFormatError(FMT, "function id must be non-zero", f"function[{i}].id")
        if fid in functions:
            raise ProfileFormatError(FMT, f"duplicate function id {fid}", f"function[{i}].id")
        if not (0 <= n < nstr):
            st.get(n, f"function[{i}].name")
        if not (0 <= sn < nstr):
            st.get(sn, f"function[{i}].system_name")
        if not (0 <= fn < nstr):
            st.get(fn, f"function[{i}].filename")
        functions[fid] = (table[n] or table[sn], table[fn])

    frame_index: dict[tuple[str, str, int], int] = {}
    names: list[str] = []
    files: list[str] = []
    lines_out: list[int] = []

    def intern(key: tuple[str, str, int]) -> int:
        idx = frame_index.get(key)
        if idx is None:
            idx = frame_index[key] = len(names)
            names.append(key[0])
            files.append(key[1])
            lines_out.append(key[2])
        return idx

    nloc = len(view.location)
    ids = np.empty(nloc, dtype=_U64)
    counts = np.empty(nloc, dtype=np.int64)
    flat: list[int] = []
    prune = np.zeros(nloc, dtype=bool)
    beneath = np.zeros(nloc, dtype=bool)
    prune_cache: dict[str, bool] = {}

    def pruned(fname: str) -> bool:
        r = prune_cache.get(fname)
        if r is None:
            s = simplify_func(fname)
            r = bool(drop_rx.match(s)) and not (keep_rx is not None and keep_rx.match(s))
            prune_cache[fname] = r
        return r

    seen: set[int] = set()
    one_line = drop_rx is None
    positional = _all_zero_ids(view.location)
    for i, loc in enumerate(view.location):
        lid = i + 1 if positional else loc.id
        if lid == 0:
            raise ProfileFormatError(FMT, "location id must be non-zero", f"location[{i}].id")
        if lid in seen:
            raise ProfileFormatError(FMT, f"duplicate location id {lid}", f"location[{i}].id")
        seen.add(lid)
        ids[i] = lid
        mid = loc.mapping_id
        if mid and mid not in mappings:
            raise ProfileFormatError(FMT, f"unknown mapping id {mid}", f"location[{i}].mapping_id")
        lns = loc.line
        if one_line and len(lns) == 1:
            # the common case (one line, a named function, no drop_frames): no entry list
            ln = lns[0]
            fid = ln.function_id
            fn = functions.get(fid) if fid else None
            if fn is not None and fn[0]:
                key = (fn[0], fn[1], ln.line if keep_lines else 0)
                idx = frame_index.get(key)
                flat.append(idx if idx is not None else intern(key))
                counts[i] = 1
                continue
        if not lns:
            flat.append(intern(_address_frame(mappings.get(mid), loc.address)))
            counts[i] = 1
            continue
        # Wire order is innermost first (the last line is the caller).
        entries: list[tuple[str, str, int]] = []
        for j, ln in enumerate(lns):
            fid = ln.function_id
            if fid == 0:
                entries.append(_address_frame(mappings.get(mid), loc.address))
                continue
            fn = functions.get(fid)
            if fn is None:
                raise ProfileFormatError(FMT, f"unknown function id {fid}", f"location[{i}].line[{j}].function_id")
            name, file = fn
            if not name:
                base_name = _address_frame(mappings.get(mid), loc.address)[0]
                name = base_name
            entries.append((name, file, ln.line if keep_lines else 0))
        if drop_rx is not None:
            # pprof: scan from the caller-most line down; the first match prunes it and
            # everything inlined below it.
            k = len(lns) - 1
            while k >= 0:
                fid = lns[k].function_id
                fn = functions.get(fid) if fid else None
                if fn is not None and fn[0] and pruned(fn[0]):
                    break
                k -= 1
            if k >= 0:
                beneath[i] = True
                if k == len(lns) - 1:
                    prune[i] = True
                else:
                    entries = entries[k + 1 :]
        for e in reversed(entries):
            flat.append(intern(e))
        counts[i] = len(entries)
    offsets = np.zeros(nloc + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return _Locations(ids, offsets, np.array(flat, dtype=np.int64), names, files, lines_out, prune, beneath)


_GO_SHAPE_MARK = b"[go.shape."
_GO_SHAPE = re.compile(r"\[go\.shape\..*\]")


def drop_go_type_parameters(name: str) -> str:
    """``name`` with ``[go.shape.`` … (up to its last ``]``) replaced by ``[...]``."""
    return _GO_SHAPE.sub("[...]", name) if "[go.shape." in name else name


def _without_go_shapes(locs: _Locations) -> _Locations:
    """``locs`` with Go type parameters dropped from frame names and equal frames merged."""
    index: dict[tuple[str, str, int], int] = {}
    remap = np.empty(len(locs.names), dtype=np.int64)
    names: list[str] = []
    files: list[str] = []
    lines: list[int] = []
    for i, key in enumerate(zip(map(drop_go_type_parameters, locs.names), locs.files, locs.lines, strict=True)):
        j = index.get(key)
        if j is None:
            j = index[key] = len(names)
            names.append(key[0])
            files.append(key[1])
            lines.append(key[2])
        remap[i] = j
    if names == locs.names:
        return locs
    return replace(locs, frames=remap[locs.frames], names=names, files=files, lines=lines, frame_ids=None)


def _bulk_ids(ids: np.ndarray) -> np.ndarray | None:
    """Entity ids (all zero: positional), or None if some are zero or repeated."""
    if len(ids) and not ids.any():
        return np.arange(1, len(ids) + 1, dtype=_U64)
    if len(ids) and ids[0] == 1 and ids[-1] == len(ids) and (np.diff(ids) == 1).all():
        return ids  # 1, 2, ... (Go's writer)
    s = np.sort(ids)
    if len(s) and (s[0] == 0 or (s[1:] == s[:-1]).any()):
        return None
    return ids


def _locations_bulk(buf: np.ndarray, spans, st: _Strings, keep_lines: bool, mappings: dict[int, tuple[str, str]]) -> _Locations | None:
    """:func:`_locations` by compiled scans (:mod:`.pprof_scan`), for the common shape:
    valid ids and references, every location with at least one line, every line naming a
    function that has a name, no ``drop_frames``. None otherwise (the caller then runs the
    per-location loop, which also raises the exact errors). Frames are interned by text in
    the same first-appearance order as the loop."""
    if spans is None:
        return None
    functions = scan_records(buf, spans[2], 5)  # id, name, system_name, filename, start_line
    locations = scan_locations(buf, spans[1])
    if functions is None or locations is None:
        return None
    head, offsets, line_rows = locations
    ids = _bulk_ids(np.ascontiguousarray(head[:, 0]))
    if ids is None:
        return None
    known = np.fromiter(mappings.keys(), dtype=_U64, count=len(mappings))
    if not all_known(np.ascontiguousarray(head[:, 1]), known):
        return None
    if len(head) and (offsets[1:] == offsets[:-1]).any():
        return None  # a location without lines: named from its mapping and address
    got = resolve_frames(functions, st.utf8.canon(), st.utf8.empty(), offsets, line_rows, keep_lines)
    if got is None:
        return None
    frames, keys = got
    table = st.table
    names, files = pick(table, keys[:, 0]), pick(table, keys[:, 1])
    none = np.zeros(len(head), dtype=bool)
    fids = frame_ids_utf8(st.utf8.spans, keys[:, 0], keys[:, 1], keys[:, 2])
    return _Locations(ids, offsets, frames, names, files, keys[:, 2].tolist(), none, none.copy(), fids)


def _all_zero_ids(entities) -> bool:
    """Some writers (the .NET profiler) leave every id unset and reference entities by
    position; a table whose ids are *all* zero is read as ids 1, 2, …"""
    return len(entities) > 0 and entities[0].id == 0 and all(e.id == 0 for e in entities)


def _address_frame(mapping: tuple[str, str] | None, address: int) -> tuple[str, str, int]:
    if mapping is not None and mapping[0]:
        return (f"{mapping[0]} 0x{address:x}", mapping[1], 0)
    if address:
        return (f"0x{address:x}", "", 0)
    return ("<unknown>", "", 0)


# ---------------------------------------------------------------------------------------
# samples: bulk decoding of the raw sample messages


@dataclass
class _Samples:
    loc_offsets: np.ndarray  # int64 (S+1): sample s's locations (leaf first) are
    loc_index: np.ndarray  # loc_index[o[s]:o[s+1]], int64 rows of the location table
    values: np.ndarray  # int64 (S, T)
    label_owner: np.ndarray  # int64 sample index of each label
    labels: np.ndarray  # int64 (L, 4): key, str, num, num_unit (string indices but num)
    frames: int  # frames the samples' locations stand for, in all
    deepest: int  # frames of the deepest sample


@dataclass
class _Fields:
    """Fields found by :func:`_walk`, in wire order within each message."""

    owner: np.ndarray  # message index
    field: np.ndarray  # field number
    wire: np.ndarray  # wire type
    pos: np.ndarray  # byte position of the tag (global)
    value: np.ndarray  # uint64 varint value (wire type 0)
    start: np.ndarray  # payload start (wire type 2)
    end: np.ndarray  # payload end (wire type 2)
    leftover: np.ndarray  # messages with more than ``max_iter`` fields (not walked)


def _varints_at(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Varints starting at ``pos`` (buf is padded with zero bytes): values, lengths, and a
    mask of those longer than 10 bytes."""
    b = buf[pos]
    val = (b & 0x7F).astype(_U64)
    length = np.ones(len(pos), dtype=np.int64)
    idx = np.flatnonzero(b & 0x80)
    k = 1
    bad = np.zeros(len(pos), dtype=bool)
    while len(idx):
        if k == 10:
            bad[idx] = True
            break
        b = buf[pos[idx] + k]
        val[idx] |= (b & 0x7F).astype(_U64) << _U64(7 * k)
        length[idx] += 1
        idx = idx[(b & 0x80) != 0]
        k += 1
    return val, length, bad


def _walk(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, what: str, max_iter: int = _MAX_WALK_ITER) -> _Fields:
    """Decode the fields of many messages at once: one vectorised step per field position."""
    n = len(starts)
    active = np.flatnonzero(ends > starts)
    cur = starts[active].copy()
    parts: list[tuple[np.ndarray, ...]] = []
    it = 0
    while len(active) and it < max_iter:
        it += 1
        end = ends[active]
        tag, tlen, bad = _varints_at(buf, cur)
        field = (tag >> _U64(3)).astype(np.int64)
        wire = (tag & _U64(7)).astype(np.int64)
        p = cur + tlen
        nxt = np.empty_like(cur)
        val = np.zeros(len(cur), dtype=_U64)
        pstart = np.zeros(len(cur), dtype=np.int64)
        pend = np.zeros(len(cur), dtype=np.int64)
        problem = bad | (field == 0) | (tag > _U64(0xFFFFFFFF)) | (p > end)
        w0 = np.flatnonzero(wire == 0)
        if len(w0):
            v, vl, b0 = _varints_at(buf, p[w0])
            val[w0] = v
            nxt[w0] = p[w0] + vl
            problem[w0] |= b0
        w2 = np.flatnonzero(wire == 2)
        if len(w2):
            ln, ll, b2 = _varints_at(buf, p[w2])
            s = p[w2] + ll
            big = ln > _U64(1 << 40)
            problem[w2] |= b2 | big
            ln = np.where(big, _U64(0), ln).astype(np.int64)
            pstart[w2] = s
            pend[w2] = s + ln
            nxt[w2] = s + ln
        w1 = np.flatnonzero(wire == 1)
        nxt[w1] = p[w1] + 8
        w5 = np.flatnonzero(wire == 5)
        nxt[w5] = p[w5] + 4
        problem |= (wire == 3) | (wire == 4) | (wire > 5)
        problem |= nxt > end
        if problem.any():
            k = int(np.flatnonzero(problem)[0])
            raise ProfileFormatError(FMT, "malformed protobuf field", f"{what}[{int(active[k])}] byte {int(cur[k] - starts[active[k]])}")
        parts.append((active, field, wire, cur, val, pstart, pend))
        keep = nxt < end
        active = active[keep]
        cur = nxt[keep]
    if parts:
        cols = [np.concatenate([p[i] for p in parts]) for i in range(7)]
        if len(parts) > 1:
            order = np.argsort(cols[3], kind="stable")
            cols = [c[order] for c in cols]
    else:
        cols = [np.zeros(0, np.int64)] * 4 + [np.zeros(0, _U64)] + [np.zeros(0, np.int64)] * 2
    del n
    if len(active) and len(cols[0]):
        # messages left over are re-parsed whole by the caller: drop their partial fields
        keep = ~np.isin(cols[0], active)
        cols = [c[keep] for c in cols]
    return _Fields(*cols, leftover=active)


def _packed(
    buf: np.ndarray, owner: np.ndarray, start: np.ndarray, end: np.ndarray, what: str, owners: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode packed varint payloads ``buf[start:end]`` (disjoint, in buffer order): (owner,
    byte position, value) of every element, in span order."""
    lens = end - start
    nz = lens > 0
    if not nz.all():
        owner, start, end, lens = owner[nz], start[nz], end[nz], lens[nz]
    if len(lens) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, _U64)
    off = np.zeros(len(lens), dtype=np.int64)
    np.cumsum(lens[:-1], out=off[1:])
    total = int(off[-1] + lens[-1])
    if total * 4 >= len(buf):
        # payloads are most of the buffer: select them with a mask of alternating
        # gap / payload runs (spans are disjoint and in buffer order)
        runs = np.empty(2 * len(lens) + 1, dtype=np.int64)
        runs[0] = start[0]
        runs[2:-1:2] = start[1:] - end[:-1]
        runs[1::2] = lens
        runs[-1] = len(buf) - end[-1]
        pattern = np.zeros(len(runs), dtype=bool)
        pattern[1::2] = True
        mask = np.repeat(pattern, runs)
        b = buf[mask]
        positions = _LazyPositions(mask=mask)
    else:
        idx = np.arange(total, dtype=np.int64)
        idx += np.repeat(start - off, lens)
        b = buf[idx]
        positions = _LazyPositions(idx=idx)
    term = b < 0x80
    last_ok = term[off + lens - 1]
    if not last_ok.all():
        k = int(np.flatnonzero(~last_ok)[0])
        raise ProfileFormatError(FMT, "truncated packed varint", f"{what}[{int(owner[k])}]")
    tend = np.flatnonzero(term)
    tstart = np.empty_like(tend)
    tstart[0] = 0
    tstart[1:] = tend[:-1] + 1
    vlen = tend - tstart + 1
    maxlen = int(vlen.max())
    if maxlen > 10:
        k = int(np.searchsorted(off, tstart[int(np.argmax(vlen))], side="right") - 1)
        raise ProfileFormatError(FMT, "varint longer than 10 bytes", f"{what}[{int(owner[k])}]")
    # branch-free decode: byte k of every varint (reading past its end is masked out)
    wide = _U64 if maxlen > 4 else np.uint32
    bp = np.concatenate([b, np.zeros(maxlen, np.uint8)]) if maxlen > 1 else b
    val = (bp[tstart] & 0x7F).astype(wide)
    for k in range(1, maxlen):
        part = (bp[tstart + k] & 0x7F).astype(wide) << wide(7 * k)
        part[vlen <= k] = 0
        val |= part
    # elements per span: terminal bytes before each span's end (its last byte is one)
    per_span = np.searchsorted(tend, off + lens)
    per_span[1:] -= per_span[:-1].copy()
    positions.tstart = tstart
    positions.span_owner, positions.span_count, positions.span_start = owner, per_span, start
    # owners=False: the caller needs only the span counts (an empty owner array instead)
    elem_owner = np.repeat(owner, per_span) if owners else np.zeros(0, dtype=np.int64)
    return elem_owner, positions, val.astype(_U64, copy=False)


class _LazyPositions:
    """Sort keys in wire order for packed elements, computed only if ordering needs them:
    the start of each element's span (equal within a span, so a stable sort keeps the
    span's order; spans never overlap other fields' tags)."""

    def __init__(self, mask: np.ndarray | None = None, idx: np.ndarray | None = None) -> None:
        self.mask, self.idx = mask, idx
        self.tstart = np.zeros(0, dtype=np.int64)
        self.span_owner: np.ndarray | None = None  # owner and element count of each span
        self.span_count: np.ndarray | None = None
        self.span_start: np.ndarray | None = None

    def get(self) -> np.ndarray:
        if self.span_start is not None and self.span_count is not None:
            return np.repeat(self.span_start, self.span_count)
        where = self.idx if self.idx is not None else np.flatnonzero(self.mask)
        return where[self.tstart]


def _scanned_samples(buf: np.ndarray, spans, view, ntypes: int, locs: _Locations) -> _Samples | None:
    """Samples decoded by the compiled scan (:mod:`.pprof_scan`) straight from the profile
    bytes, their location ids resolved against ``locs``; None when it declines (the exact
    decoders below then run and name the error)."""
    if spans is None or len(spans[0][0]) != len(view.sample):
        return None
    got = scan_samples(buf, spans[0][0], spans[0][1], ntypes, locs.ids, locs.frame_offsets)
    return None if got is None else _Samples(*got)


def _samples(view, ntypes: int, limits: Limits, locs: _Locations) -> _Samples:
    """The exact field walk: decodes every valid encoding like :func:`_scanned_samples`
    and names the first error of an invalid one (it runs when the compiled scan declines)."""
    raw = list(view.sample)
    n = len(raw)
    lens = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(lens[:-1], out=starts[1:])
    ends = starts + lens
    joined = b"".join(raw)
    buf = np.frombuffer(joined + bytes(16), dtype=np.uint8)
    f = _walk(buf, starts, ends, "sample")

    loc_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (owner, pos, value)
    val_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    lab_start: list[np.ndarray] = []
    lab_end: list[np.ndarray] = []
    lab_owner: list[np.ndarray] = []
    bad_wire = ((f.field == 1) | (f.field == 2)) & (f.wire != 0) & (f.wire != 2) | (f.field == 3) & (f.wire != 2)
    if bad_wire.any():
        k = int(np.flatnonzero(bad_wire)[0])
        raise ProfileFormatError(FMT, f"wrong wire type {int(f.wire[k])} for field {int(f.field[k])}", f"sample[{int(f.owner[k])}]")
    for fld, parts in ((1, loc_parts), (2, val_parts)):
        m = f.field == fld
        packed = np.flatnonzero(m & (f.wire == 2))
        single = np.flatnonzero(m & (f.wire == 0))
        if len(packed):
            # location ids in packed fields only: their counts per sample come from the spans
            only = fld == 1 and len(single) == 0 and len(f.leftover) == 0
            parts.append(_packed(buf, f.owner[packed], f.start[packed], f.end[packed], "sample", owners=not only))
        if len(single):
            parts.append((f.owner[single], f.pos[single], f.value[single]))
    lm = np.flatnonzero(f.field == 3)
    lab_owner.append(f.owner[lm])
    lab_start.append(f.start[lm])
    lab_end.append(f.end[lm])

    if len(f.leftover):
        # Messages with unusually many fields (unpacked repeated fields, many labels):
        # let upb parse them one by one.
        lo, lp, lv, vo, vp, vv = [], [], [], [], [], []
        lab_rows: list[tuple[int, int, int, int, int]] = []
        for s in f.leftover.tolist():
            msg = profile_pb2.Sample()
            try:
                msg.ParseFromString(raw[s])
            except (DecodeError, ValueError) as e:
                raise ProfileFormatError(FMT, f"malformed sample ({e})", f"sample[{s}]") from None
            base = int(starts[s])
            ids = list(msg.location_id)
            lo.extend([s] * len(ids))
            lp.extend(range(base, base + len(ids)))
            lv.extend(ids)
            vals = [v & 0xFFFFFFFFFFFFFFFF for v in msg.value]
            vo.extend([s] * len(vals))
            vp.extend(range(base, base + len(vals)))
            vv.extend(vals)
            for lab in msg.label:
                lab_rows.append((s, lab.key, lab.str, lab.num, lab.num_unit))
        loc_parts.append((np.array(lo, np.int64), np.array(lp, np.int64), np.array(lv, _U64)))
        val_parts.append((np.array(vo, np.int64), np.array(vp, np.int64), np.array(vv, _U64)))
        extra = np.array(lab_rows, dtype=np.int64).reshape(-1, 5)
    else:
        extra = np.zeros((0, 5), dtype=np.int64)

    loc_owner, loc_ids = _ordered(loc_parts)
    val_owner, vals = _ordered(val_parts)
    counts = np.bincount(val_owner, minlength=n) if len(val_owner) else np.zeros(n, np.int64)
    wrong = np.flatnonzero(counts != ntypes)
    if len(wrong):
        s = int(wrong[0])
        raise ProfileFormatError(FMT, f"sample has {int(counts[s])} values for {ntypes} sample types", f"sample[{s}].value")
    values = vals.view(np.int64).reshape(n, ntypes)
    lazy = loc_parts[0][1] if len(loc_parts) == 1 else None
    if isinstance(lazy, _LazyPositions) and lazy.span_owner is not None:
        # one packed part: count per span owner (spans, not elements)
        loc_counts = np.bincount(lazy.span_owner, weights=lazy.span_count, minlength=n).astype(np.int64)
    else:
        loc_counts = np.bincount(loc_owner, minlength=n) if len(loc_owner) else np.zeros(n, np.int64)
    loc_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(loc_counts, out=loc_offsets[1:])

    owner = np.concatenate(lab_owner)
    key = np.zeros(0, np.int64)
    sv = num = unit = key
    if len(owner):
        lf = _walk(buf, np.concatenate(lab_start), np.concatenate(lab_end), "sample_label")
        if len(lf.leftover):
            raise ProfileFormatError(FMT, "label with too many fields", "sample.label")
        bad = (lf.field <= 4) & (lf.wire != 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ProfileFormatError(FMT, f"wrong wire type {int(lf.wire[k])} for field {int(lf.field[k])}", f"sample[{int(owner[lf.owner[k]])}].label")
        cols = []
        for fld in (1, 2, 3, 4):
            col = np.zeros(len(owner), dtype=_U64)
            m = np.flatnonzero(lf.field == fld)
            col[lf.owner[m]] = lf.value[m]  # wire order: the last occurrence wins
            cols.append(col.view(np.int64))
        key, sv, num, unit = cols
    if len(extra):
        owner = np.concatenate([owner, extra[:, 0]])
        key = np.concatenate([key, extra[:, 1]])
        sv = np.concatenate([sv, extra[:, 2]])
        num = np.concatenate([num, extra[:, 3]])
        unit = np.concatenate([unit, extra[:, 4]])
    loc_index = _resolve_locations(locs.ids, loc_ids, loc_offsets, np.arange(n, dtype=np.int64))
    per_ref = np.zeros(len(loc_index) + 1, dtype=np.int64)
    np.cumsum(np.diff(locs.frame_offsets)[loc_index], out=per_ref[1:])
    depth = per_ref[loc_offsets[1:]] - per_ref[loc_offsets[:-1]]
    lab = np.stack([key, sv, num, unit], axis=1) if len(owner) else np.zeros((0, 4), dtype=np.int64)
    return _Samples(loc_offsets, loc_index, values, owner, lab, int(per_ref[-1]), int(depth.max()) if n else 0)


def _ordered(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, _U64)
    if len(parts) == 1:
        return parts[0][0], parts[0][2]
    if len(parts) == 2:
        # the usual mix (packed fields, plus single values written unpacked): each part is
        # in owner order; if no owner has elements in both, insert the smaller part
        (a_own, _, a_val), (b_own, _, b_val) = sorted(parts, key=lambda p: -len(p[0]))
        at = np.searchsorted(a_own, b_own, side="left")
        if np.array_equal(at, np.searchsorted(a_own, b_own, side="right")):
            return np.insert(a_own, at, b_own), np.insert(a_val, at, b_val)
    owner = np.concatenate([p[0] for p in parts])
    pos = np.concatenate([p[1].get() if isinstance(p[1], _LazyPositions) else p[1] for p in parts])
    val = np.concatenate([p[2] for p in parts])
    order = np.argsort(pos, kind="stable")
    return owner[order], val[order]


# ---------------------------------------------------------------------------------------
# stacks


def _resolve_locations(ids: np.ndarray, refs: np.ndarray, offsets: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """Location index of every referenced location id (validated)."""
    if len(refs) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(ids) and int(ids.max()) <= 4 * len(ids) + 4096:
        lut = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
        lut[ids.astype(np.int64)] = np.arange(len(ids), dtype=np.int64)
        inside = refs < _U64(len(lut))
        out = np.full(len(refs), -1, dtype=np.int64)
        out[inside] = lut[refs[inside].astype(np.int64)]
    else:
        out = np.full(len(refs), -1, dtype=np.int64)
        if len(ids):
            order = np.argsort(ids)
            sorted_ids = ids[order]
            pos = np.minimum(np.searchsorted(sorted_ids, refs), len(ids) - 1)
            hit = sorted_ids[pos] == refs
            out[hit] = order[pos[hit]]
    bad = np.flatnonzero(out < 0)
    if len(bad):
        k = int(bad[0])
        s = int(rep[np.searchsorted(offsets, k, side="right") - 1])
        raise ProfileFormatError(FMT, f"unknown location id {int(refs[k])}", f"sample[{s}].location_id")
    return out


def _reverse_segments(offsets: np.ndarray, elems: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reverse every CSR segment (leaf-first → root-first)."""
    if len(elems) == 0:
        return offsets, elems
    lengths = np.diff(offsets)
    # element j of segment [s, e) goes to s + e - 1 - j
    base = np.repeat(offsets[:-1] + offsets[1:] - 1, lengths)
    src = base - np.arange(len(elems), dtype=np.int64)
    return offsets, elems[src]


def _segment_ids(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def _prune(offsets: np.ndarray, elems: np.ndarray, prune: np.ndarray, beneath: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """google/pprof ``Prune`` on root-first location stacks (see the module contract)."""
    if len(elems) == 0:
        return offsets, elems
    seg = _segment_ids(offsets)
    flagged = beneath[elems] | prune[elems]
    user = ~flagged
    # any user frame strictly before this element within the same stack?
    cu = np.cumsum(user)
    before = cu - user - np.where(offsets[seg] > 0, cu[np.maximum(offsets[seg] - 1, 0)], 0)
    cand = flagged & (before > 0)
    n = len(offsets) - 1
    cut = np.diff(offsets).copy()  # new length per stack
    ci = np.flatnonzero(cand)
    if len(ci):
        s = seg[ci]
        first = np.ones(len(ci), dtype=bool)
        first[1:] = s[1:] != s[:-1]
        ci, s = ci[first], s[first]
        pos = ci - offsets[s]
        cut[s] = np.where(prune[elems[ci]], pos, pos + 1)
    keep = (np.arange(len(elems)) - offsets[seg]) < cut[seg]
    new_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cut, out=new_off[1:])
    return new_off, elems[keep]


def _truncate(offsets: np.ndarray, frames: np.ndarray, max_depth: int, marker: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Cap stacks at ``max_depth`` frames: root-most frames become one marker frame.
    Returns the new CSR and the mask of truncated stacks (None if none was)."""
    lengths = np.diff(offsets)
    max_depth = max(int(max_depth), 1)
    over = lengths > max_depth
    if not over.any():
        return offsets, frames, None
    new_len = np.where(over, max_depth, lengths)
    new_off = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(new_len, out=new_off[1:])
    seg = np.repeat(np.arange(len(lengths), dtype=np.int64), new_len)
    j = np.arange(int(new_off[-1]), dtype=np.int64) - new_off[seg]
    src = offsets[seg + 1] - new_len[seg] + j
    out = frames[np.minimum(src, len(frames) - 1)]
    out[over[seg] & (j == 0)] = marker
    return new_off, out, over


def _dedupe(
    offsets: np.ndarray, elems: np.ndarray, label_index: np.ndarray | None, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Sum samples with the same location sequence and label set (exactly: see
    :func:`~.pprof_scan.dedupe_stacks`). Returns (offsets, elems, label_index, values,
    weight = samples per stack)."""
    n = len(offsets) - 1
    if n < 2:
        return offsets, elems, label_index, values, np.ones(n, dtype=np.int64)
    extra = label_index if label_index is not None else np.zeros(n, dtype=np.int64)
    new_off, new_elems, summed, counts, first = dedupe_stacks(offsets, elems, extra, values)
    return new_off, new_elems, (label_index[first] if label_index is not None else None), summed, counts


# ---------------------------------------------------------------------------------------
# labels


def _label_sets(s: _Samples, st: _Strings) -> tuple[np.ndarray | None, np.ndarray | None, pl.DataFrame | None]:
    """``(label_index, set_ids, labels)``: the label set of every sample (``set_ids[label_index[i]]``,
    0 for none) and the long-form labels table, hashed from the string table's bytes
    (string indices of equal texts made equal first, so sets are grouped by text)."""
    if len(s.label_owner) == 0:
        return None, None, None
    nstr = st.n
    strings = s.labels[:, [0, 1, 3]]
    if strings.min() < 0 or strings.max() >= nstr:
        for col, name in ((0, "key"), (1, "str"), (3, "num_unit")):
            arr = s.labels[:, col]
            bad = np.flatnonzero((arr < 0) | (arr >= nstr))
            if len(bad):
                k = int(bad[0])
                raise ProfileFormatError(FMT, f"string index {int(arr[k])} out of range (table has {nstr})", f"sample[{int(s.label_owner[k])}].label.{name}")
    got = label_values(s.label_owner, s.labels, nstr)
    if got is None:
        return None, None, None
    owner, key, vid, pairs = got
    values = st.utf8.with_numeric(pairs[:, 0], pairs[:, 1])  # value ids index these strings
    canon = values.canon()
    label_index, set_off, set_codes = label_sets(owner, canon[key] * len(canon) + canon[vid], len(s.loc_offsets) - 1)
    keys, vals = np.divmod(set_codes, len(canon))
    ids = labels_ids_utf8(values.spans, set_off, keys, vals)
    labels = labels_table(ids, np.diff(set_off), pick(values.texts, keys), pick(values.texts, vals))
    return label_index, np.concatenate([np.zeros(1, dtype=np.uint64), ids]), labels
