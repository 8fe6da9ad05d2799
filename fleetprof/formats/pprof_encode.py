"""pprof encoder: canonical :class:`Profile` → ``profile.proto`` bytes (gzipped by default).

Contract (:func:`encode_pprof`):

* Valid per ``profile.proto``: ``string_table[0] == ""``, every id ≥ 1, every reference
  resolvable; functions are deduplicated by (name, file), and there is one ``Location``
  per frame with exactly one ``Line`` (frame line numbers are written when non-zero), so
  the caller/callee structure is entirely in ``Sample.location_id`` (leaf first).
* One ``Sample`` per sample row (leaf node, label set) with one value per sample type;
  label sets are written back as string labels (a numeric label decoded as ``"<num>
  <unit>"`` comes back as a string label with that text, i.e. the same label set).
* ``sample_type``, ``default_sample_type``, ``period_type``, ``period``, ``time_nanos``,
  ``duration_nanos`` and ``comment`` are written; ``drop_frames``/``keep_frames`` are not
  (the decoder already applied them). No mappings are written (addresses are not kept).
* decode → encode → decode gives the same stacks (frame names/files, root first), the
  same label sets and the same totals per sample type.
* Output is deterministic (gzip mtime 0).

The header (tables, strings) is serialised by protobuf; the samples, which are most of
the bytes, are varint-encoded in bulk with numpy and appended as repeated field 2 (a
protobuf message may hold its fields in any order).
"""

from __future__ import annotations

import gzip

import numpy as np

from fleetprof.formats.proto import profile_pb2
from fleetprof.model.profile import Profile, expand, positions

_U64 = np.uint64


def encode_pprof(profile: Profile, *, compress: bool = True) -> bytes:
    """Encode ``profile`` as pprof (see the module contract)."""
    strings: dict[str, int] = {"": 0}

    def s(text: str) -> int:
        idx = strings.get(text)
        if idx is None:
            idx = strings[text] = len(strings)
        return idx

    head = profile_pb2.Profile()
    for vt in profile.sample_types:
        head.sample_type.add(type=s(vt.type), unit=s(vt.unit))
    if profile.period_type is not None:
        head.period_type.type = s(profile.period_type.type)
        head.period_type.unit = s(profile.period_type.unit)
    head.period = int(profile.period)
    head.time_nanos = int(profile.time_nanos)
    head.duration_nanos = int(profile.duration_nanos)
    if profile.default_sample_type:
        head.default_sample_type = s(profile.default_sample_type)
    for c in profile.comments:
        head.comment.append(s(c))

    # Locations: one per frame (id = row + 1); functions per distinct (name, file).
    frames = profile.frames
    frame_keys = frames["frame_id"].to_numpy()
    fn_ids: dict[tuple[str, str], int] = {}
    for i, (name, file, line) in enumerate(zip(frames["name"].to_list(), frames["file"].to_list(), frames["line"].to_list(), strict=True)):
        key = (name, file)
        fid = fn_ids.get(key)
        if fid is None:
            fid = fn_ids[key] = len(fn_ids) + 1
            head.function.add(id=fid, name=s(name), system_name=s(name), filename=s(file))
        loc = head.location.add(id=i + 1)
        loc.line.add(function_id=fid, line=int(line or 0))

    samples_bytes = _encode_samples(profile, frame_keys, s)
    head.string_table.extend(strings)
    data = head.SerializeToString() + samples_bytes
    if compress:
        return gzip.compress(data, compresslevel=6, mtime=0)
    return data


def _encode_samples(profile: Profile, frame_keys: np.ndarray, s) -> bytes:
    """All samples as repeated ``Profile.sample`` fields, varint-encoded in bulk."""
    ntypes = len(profile.sample_types)
    nrows = profile.samples.height
    if nrows == 0:
        return b""
    ex = expand(profile)
    loc = positions(frame_keys, ex.frame_ids) + 1  # location ids, root first
    if len(loc) and (loc <= 0).any():
        raise ValueError("profile references frames missing from its frame table")
    offsets = ex.offsets
    lengths = np.diff(offsets)
    # leaf first: element j of segment [a, b) comes from a + b - 1 - j
    src = np.repeat(offsets[:-1] + offsets[1:] - 1, lengths) - np.arange(len(loc), dtype=np.int64)
    loc_leaf_first = loc[src].astype(_U64) if len(loc) else np.zeros(0, _U64)
    values = (
        ex.samples.select(profile.value_cols).to_numpy().astype(np.int64).reshape(nrows, ntypes)
        if ntypes
        else np.zeros((nrows, 0), np.int64)
    )
    vals = values.view(_U64).reshape(-1)

    # labels: per sample row, the (key, value) string indices of its label set
    lab_ids = ex.samples["labels"].to_numpy()
    lab_counts = np.zeros(nrows, dtype=np.int64)
    lab_key = lab_val = np.zeros(0, dtype=_U64)
    if lab_ids.any() and profile.labels.height:
        lab_tab = profile.labels.sort(["labels", "key", "value"])
        set_ids = lab_tab["labels"].to_numpy()
        key_idx = np.array([s(k) for k in lab_tab["key"].to_list()], dtype=_U64)
        val_idx = np.array([s(v) for v in lab_tab["value"].to_list()], dtype=_U64)
        uniq, first, cnt = np.unique(set_ids, return_index=True, return_counts=True)
        where = np.searchsorted(uniq, lab_ids)
        where = np.minimum(where, len(uniq) - 1)
        has = (lab_ids != 0) & (uniq[where] == lab_ids)
        lab_counts = np.where(has, cnt[where], 0)
        start = np.where(has, first[where], 0)
        tot = int(lab_counts.sum())
        cum = np.cumsum(lab_counts) - lab_counts
        src = np.arange(tot, dtype=np.int64) + np.repeat(start - cum, lab_counts)
        lab_key, lab_val = key_idx[src], val_idx[src]

    vlen_loc = _varint_len(loc_leaf_first)
    vlen_val = _varint_len(vals)
    bl = _segment_sum(vlen_loc, offsets)  # packed location_id payload bytes per sample
    bv = vlen_val.reshape(nrows, ntypes).sum(axis=1) if ntypes else np.zeros(nrows, np.int64)
    nl = lengths
    lab_len = 2 + _varint_len(lab_key) + _varint_len(lab_val)  # Label message size
    lab_off = np.zeros(nrows + 1, dtype=np.int64)
    np.cumsum(lab_counts, out=lab_off[1:])
    lab_bytes = _segment_sum(1 + _varint_len(lab_len.astype(_U64)) + lab_len, lab_off)
    has_l = nl > 0
    has_v = bv > 0
    msg_len = (
        np.where(has_l, 1 + _varint_len(bl.astype(_U64)) + bl, 0)
        + np.where(has_v, 1 + _varint_len(bv.astype(_U64)) + bv, 0)
        + lab_bytes
    )

    # token layout per sample: [0x12, M] [0x0a, BL, locs…]? [0x12, BV, vals…]? [0x1a, LL, 0x08, k, 0x10, v]*
    ntok = 2 + np.where(has_l, 2 + nl, 0) + np.where(has_v, 2 + ntypes, 0) + 6 * lab_counts
    tok_off = np.zeros(nrows + 1, dtype=np.int64)
    np.cumsum(ntok, out=tok_off[1:])
    tok = np.empty(int(tok_off[-1]), dtype=_U64)
    base = tok_off[:-1]
    tok[base] = 0x12
    tok[base + 1] = msg_len.astype(_U64)
    p = base + 2
    li = np.flatnonzero(has_l)
    tok[p[li]] = 0x0A
    tok[p[li] + 1] = bl[li].astype(_U64)
    elem_sample = np.repeat(np.arange(nrows, dtype=np.int64), nl)
    within = np.arange(len(loc_leaf_first), dtype=np.int64) - offsets[elem_sample]
    tok[p[elem_sample] + 2 + within] = loc_leaf_first
    p = p + np.where(has_l, 2 + nl, 0)
    vi = np.flatnonzero(has_v)
    tok[p[vi]] = 0x12
    tok[p[vi] + 1] = bv[vi].astype(_U64)
    if ntypes:
        vs = np.repeat(vi, ntypes)
        vw = np.tile(np.arange(ntypes, dtype=np.int64), len(vi))
        tok[p[vs] + 2 + vw] = vals.reshape(nrows, ntypes)[vi].reshape(-1)
    p = p + np.where(has_v, 2 + ntypes, 0)
    if len(lab_key):
        ls = np.repeat(np.arange(nrows, dtype=np.int64), lab_counts)
        lw = np.arange(len(lab_key), dtype=np.int64) - lab_off[ls]
        at = p[ls] + 6 * lw
        tok[at] = 0x1A
        tok[at + 1] = lab_len.astype(_U64)
        tok[at + 2] = 0x08
        tok[at + 3] = lab_key
        tok[at + 4] = 0x10
        tok[at + 5] = lab_val
    return _varint_bytes(tok)


def _varint_len(v: np.ndarray) -> np.ndarray:
    """Encoded size of each uint64 varint."""
    n = np.ones(len(v), dtype=np.int64)
    x = v.astype(_U64, copy=True)
    x >>= _U64(7)
    while True:
        nz = x != 0
        if not nz.any():
            return n
        n += nz
        x >>= _U64(7)


def _segment_sum(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    cum = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(x, out=cum[1:])
    return cum[offsets[1:]] - cum[offsets[:-1]]


def _varint_bytes(tok: np.ndarray) -> bytes:
    lens = _varint_len(tok)
    off = np.zeros(len(tok) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    out = np.empty(int(off[-1]), dtype=np.uint8)
    idx = np.arange(len(tok), dtype=np.int64)
    k = 0
    while len(idx):
        t = tok[idx]
        byte = ((t >> _U64(7 * k)) & _U64(0x7F)).astype(np.uint8)
        more = lens[idx] > k + 1
        out[off[idx] + k] = byte | (more.astype(np.uint8) << 7)
        idx = idx[more]
        k += 1
    return out.tobytes()

