"""The canonical columnar profile (see ``shared/design.md``): frames, call-tree nodes, samples.

A :class:`Profile` holds four polars tables:

* ``frames``  — ``frame_id: u64, name: str, file: str, line: i64`` (unique ``frame_id``;
  ``line`` is 0 unless the decoder was asked to keep lines).
* ``nodes``   — ``node_id: u64, parent_id: u64, frame_id: u64, depth: u32`` (unique
  ``node_id``; every ancestor of every sampled node is present; top-level nodes have
  ``parent_id == ROOT_ID`` and ``depth == 1``).
* ``samples`` — ``node_id: u64, labels: u64, v0 … v{T-1}: i64`` — one row per distinct
  (leaf node, label set), values summed. ``node_id == ROOT_ID`` holds samples with an
  empty stack (they count in totals, as the root's self value).
* ``labels``  — ``labels: u64, key: str, value: str`` in long form (label set id 0 = none).

Value column ``v{i}`` is measured in ``sample_types[i]``. Profiles are immutable by
convention: operations return new profiles. Build them with :func:`build` from stacks in
CSR form; read stacks back with :func:`expand`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter

import numpy as np
import polars as pl

from fleetprof.model.hashing import ROOT_ID, frame_ids, labels_ids, mix
from fleetprof.model.trie import TrieNodes, expand_locations, sample_columns, trie_nodes

U64 = pl.UInt64
FRAMES_SCHEMA = {"frame_id": pl.UInt64, "name": pl.Utf8, "file": pl.Utf8, "line": pl.Int64}
NODES_SCHEMA = {"node_id": pl.UInt64, "parent_id": pl.UInt64, "frame_id": pl.UInt64, "depth": pl.UInt32}
LABELS_SCHEMA = {"labels": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}


@dataclass(frozen=True)
class ValueType:
    """A pprof ``ValueType``: what a value counts (``cpu``) and its unit (``nanoseconds``)."""

    type: str
    unit: str

    def __str__(self) -> str:
        return f"{self.type}:{self.unit}"


def value_columns(n: int) -> list[str]:
    """Names of the value columns of a profile with ``n`` sample types."""
    return [f"v{i}" for i in range(n)]


@dataclass(frozen=True)
class Profile:
    """Canonical profile; see the module docstring for the table contracts."""

    sample_types: tuple[ValueType, ...]
    frames: pl.DataFrame
    nodes: pl.DataFrame
    samples: pl.DataFrame
    labels: pl.DataFrame
    period_type: ValueType | None = None
    period: int = 0
    default_sample_type: str | None = None
    time_nanos: int = 0
    duration_nanos: int = 0
    truncated_stacks: int = 0
    comments: tuple[str, ...] = field(default_factory=tuple)

    @property
    def value_cols(self) -> list[str]:
        return value_columns(len(self.sample_types))

    def type_index(self, sample_type: str | None = None) -> int:
        """Index of ``sample_type`` (``"cpu"`` or ``"cpu:nanoseconds"``); default: the
        pprof ``default_sample_type`` if set, else the last type (pprof's convention)."""
        want = sample_type or self.default_sample_type
        if not want:
            return len(self.sample_types) - 1
        for i, st in enumerate(self.sample_types):
            if want in (st.type, str(st)):
                return i
        names = ", ".join(str(s) for s in self.sample_types)
        raise KeyError(f"sample type {want!r} not in profile (have: {names})")

    def totals(self) -> list[int]:
        """Sum of every value column (exact int64)."""
        if self.samples.height == 0:
            return [0] * len(self.sample_types)
        row = self.samples.select(pl.col(c).sum() for c in self.value_cols).row(0)
        return [int(x) for x in row]

    def with_meta(self, **changes: object) -> Profile:
        return replace(self, **changes)  # type: ignore[arg-type]


def empty_frames() -> pl.DataFrame:
    return pl.DataFrame(schema=FRAMES_SCHEMA)


def empty_labels() -> pl.DataFrame:
    return pl.DataFrame(schema=LABELS_SCHEMA)


@dataclass
class Stacks:
    """Stacks in CSR form, the exchange format between decoders, operations and builders.

    ``frames[offsets[i]:offsets[i+1]]`` are the frame indices of stack ``i``, **root first**,
    indexing the local frame table ``names``/``files``/``lines``. ``values`` is an
    ``(S, T)`` int64 array; ``label_sets[label_index[i]]`` the labels of stack ``i``.
    """

    names: Sequence[str]
    files: Sequence[str]
    offsets: np.ndarray
    frames: np.ndarray
    values: np.ndarray
    lines: Sequence[int] | None = None
    label_index: np.ndarray | None = None
    label_sets: Sequence[tuple[tuple[str, str], ...]] | None = None
    label_ids: np.ndarray | None = None
    """Per-stack label set ids already hashed (``labels_id``); when given, ``label_index``/
    ``label_sets`` are ignored and the caller supplies the profile's ``labels`` table."""
    label_set_ids: np.ndarray | None = None
    """Ids (``labels_id``) of the label sets that ``label_index`` points to, already hashed,
    with their long-form table in ``labels``; they replace ``label_sets`` when given."""
    labels: pl.DataFrame | None = None
    frame_ids: np.ndarray | None = None
    """Ids of the local frame table (``frame_ids(names, files, lines)``) when known."""
    locations: tuple[np.ndarray, np.ndarray] | None = None
    """pprof's shape, built without expanding it: when given as ``(lf_off, lf_frames)``,
    ``frames`` holds *location* indices with every stack listed **leaf first**, and location
    ``i`` stands for frames ``lf_frames[lf_off[i]:lf_off[i + 1]]`` (root first)."""


def build(
    stacks: Stacks,
    sample_types: Sequence[ValueType],
    *,
    frame_id_table: np.ndarray | None = None,
    **meta: object,
) -> Profile:
    """Build a :class:`Profile` from CSR stacks; vectorised over stacks (one loop per depth).

    With an empty ``stacks.names`` the frame table is left empty (callers that already
    hold the frames, such as :func:`rebuild`, fill it in).

    ``frame_id_table`` may pass precomputed frame ids for the local frame table (it must
    equal ``frame_ids(names, files, lines)``); otherwise they are hashed here.
    """
    offsets = np.asarray(stacks.offsets, dtype=np.int64)
    fidx = np.asarray(stacks.frames, dtype=np.int64)
    values = np.asarray(stacks.values, dtype=np.int64).reshape(len(offsets) - 1, len(sample_types))
    if frame_id_table is None:
        frame_id_table = stacks.frame_ids if stacks.frame_ids is not None else frame_ids(stacks.names, stacks.files, stacks.lines)
    ftab = np.asarray(frame_id_table, dtype=np.uint64)
    trie = None
    if len(fidx) <= TRIE_MAX_ELEMENTS:
        trie = trie_nodes(offsets, fidx, ftab, stacks.locations)
    if trie is None and stacks.locations is not None:
        offsets, fidx = expand_locations(offsets, fidx, *stacks.locations)
    if trie is None and len(fidx) > TRIE_MAX_ELEMENTS:
        trie = _prefix_tree(offsets, fidx, ftab)
    code, set_ids, labels = _label_columns(stacks, len(offsets) - 1)
    cols = value_columns(len(sample_types))
    if trie is not None:
        nid, pid, nfid, depth, leaf_row, parent_row = trie[:6]
        nodes = _table({"node_id": nid, "parent_id": pid, "frame_id": nfid, "depth": depth}, NODES_SCHEMA)
        samples, sample_rows = _aggregate_rows(leaf_row, nid, code, set_ids, values, cols)
        if len(nid) > SMALL:
            _remember_rows(nodes, parent_row)
            _remember_rows(samples, sample_rows)
    else:
        nodes, leaf = _hashed_nodes(offsets, fidx, ftab, np.diff(offsets))
        samples = _aggregate_arrays(leaf, set_ids[code], values, cols)
    if len(stacks.names) == 0:
        return Profile(tuple(sample_types), empty_frames(), nodes, samples, labels, **meta)  # type: ignore[arg-type]
    used = trie.frames if isinstance(trie, TrieNodes) else _used_frames(fidx, ftab)
    every = len(used) == len(ftab)  # then used is 0, 1, 2, ...
    frames = _table(
        {
            "frame_id": ftab[used],
            "name": stacks.names if every else pick(stacks.names, used),
            "file": stacks.files if every else pick(stacks.files, used),
            "line": np.zeros(len(used), dtype=np.int64)
            if stacks.lines is None
            else np.asarray(stacks.lines, dtype=np.int64)[used],
        },
        FRAMES_SCHEMA,
    )
    return Profile(tuple(sample_types), frames, nodes, samples, labels, **meta)  # type: ignore[arg-type]


def _used_frames(fidx: np.ndarray, ftab: np.ndarray) -> np.ndarray:
    """The first local frame of every distinct frame id that some stack uses, ascending."""
    used = np.flatnonzero(np.bincount(fidx, minlength=len(ftab))) if len(fidx) else np.zeros(0, dtype=np.int64)
    return used[_first_distinct(ftab[used])]


def pick(items: Sequence[str], rows: np.ndarray) -> list[str]:
    """``[items[i] for i in rows]``, gathered in C."""
    if len(rows) == 0:
        return []
    got = itemgetter(*rows.tolist())(items)
    return [got] if len(rows) == 1 else list(got)


def _hashed_nodes(
    offsets: np.ndarray, fidx: np.ndarray, ftab: np.ndarray, lengths: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray]:
    """Node table and leaf node of every stack by hashing every stack element and keeping
    the first occurrence of each node id (any stack shape; see :func:`_prefix_tree`)."""
    fid = ftab[fidx] if len(fidx) else np.zeros(0, dtype=np.uint64)
    node = _chain_node_ids(offsets, fid)
    pos = np.arange(len(fidx), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    parent = np.empty_like(node)
    if len(node):
        parent[1:] = node[:-1]
        parent[pos == 0] = np.uint64(ROOT_ID)
    first = _first_distinct(node)
    nodes = pl.DataFrame(
        {"node_id": node[first], "parent_id": parent[first], "frame_id": fid[first], "depth": (pos[first] + 1).astype(np.uint32)},
        schema=NODES_SCHEMA,
    )
    leaf = np.full(len(lengths), np.uint64(ROOT_ID), dtype=np.uint64)
    nonempty = lengths > 0
    leaf[nonempty] = node[offsets[1:][nonempty] - 1]
    return nodes, leaf


_ROWS: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _remember_rows(table: pl.DataFrame, rows: np.ndarray) -> None:
    key = id(table)
    _ROWS[key] = (weakref.ref(table, lambda _ref: _ROWS.pop(key, None)), rows)


def _rows_hint(table: pl.DataFrame) -> np.ndarray | None:
    entry = _ROWS.get(id(table))
    if entry is None or entry[0]() is not table:
        return None
    return entry[1]


def parent_rows_hint(nodes: pl.DataFrame) -> np.ndarray | None:
    """Row of every node's parent (-1 for top-level nodes) as :func:`build` found it while
    building this very node table (large tables only; ``None`` if unknown). Renderers use
    it to skip resolving ``parent_id``; it is a hint, to be checked against ``parent_id``
    (``node_id[hint] == parent_id``), never trusted blindly."""
    return _rows_hint(nodes)


def sample_rows_hint(samples: pl.DataFrame) -> np.ndarray | None:
    """Node-table row of every sample row (-1 for the root) as :func:`build` found it for
    this very samples table (large unlabelled builds only); a hint, to be checked."""
    return _rows_hint(samples)


def _aggregate_rows(
    leaf_row: np.ndarray, nid: np.ndarray, code: np.ndarray, ids: np.ndarray, values: np.ndarray, cols: list[str]
) -> tuple[pl.DataFrame, np.ndarray]:
    """Samples summed per (leaf row, label set code) (:func:`~.trie.sum_by_leaf`: dense
    keys, no hashing of node ids), all-zero rows dropped; ``ids[code]`` is a row's label
    set id. Also returns the node row of each sample row (-1 for the root's)."""
    node, lab, columns, rows = sample_columns(leaf_row, code, values.reshape(len(leaf_row), len(cols)), nid, ids)
    data = {"node_id": node, "labels": lab} | {c: columns[i] for i, c in enumerate(cols)}
    return _table(data, {"node_id": U64, "labels": U64} | {c: pl.Int64 for c in cols}), rows


TRIE_MAX_ELEMENTS = 1 << 17
"""Stacks with at most this many elements (frames; locations for pprof's shape) in all are
built by the compiled trie (:mod:`.trie`); larger ones by sorting (:func:`_prefix_tree`),
whose cost grows more slowly than a trie's once the node table outgrows the cache."""

PREFIX_TREE_CELLS = 4
""":func:`_prefix_tree` pads stacks to the deepest one; it runs while that padded matrix
has at most this many cells per stack element (plus a constant), else hashing does."""


def _prefix_tree(
    offsets: np.ndarray, fidx: np.ndarray, ftab: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Nodes of CSR stacks by sorting instead of hashing every element.

    Stacks are padded into a (stack, depth) matrix of frame codes (codes of equal frame ids
    made equal first) and sorted lexicographically; then the stacks sharing a prefix are
    adjacent, so element ``(s, d)`` is a new node exactly when ``d`` reaches the longest
    common prefix of stack ``s`` with the stack before it. The new nodes are listed level
    by level (depth 1 first; within a level in stack order, so a level's parents are in
    non-decreasing row order) and chained from their parents' ids one level at a time.

    Returns ``(node_id, parent_id, frame_id, depth, leaf_row, parent_row)`` (``leaf_row``:
    the row of every stack's leaf node, -1 for an empty stack; ``parent_row``: the row of
    each node's parent, -1 at depth 1) or ``None`` when the padded matrix would be too large (a
    few very deep stacks among many shallow ones)."""
    n_stacks = len(offsets) - 1
    lengths = np.diff(offsets)
    n = len(fidx)
    if n_stacks == 0 or n == 0:
        return None
    maxd = int(lengths.max())
    if n_stacks * maxd > PREFIX_TREE_CELLS * n + (1 << 16):
        return None
    uf, canon = np.unique(ftab, return_inverse=True)
    code_dtype = np.uint16 if len(uf) < (1 << 16) - 1 else np.uint32 if len(uf) < (1 << 32) - 1 else np.uint64
    key = (canon.astype(np.int64) + 1).astype(code_dtype)  # 0 pads
    mat = np.zeros((n_stacks, maxd), dtype=code_dtype)
    row_base = offsets[:-1] - np.arange(n_stacks, dtype=np.int64) * maxd
    mat.ravel()[np.arange(n, dtype=np.int64) - np.repeat(row_base, lengths)] = key[fidx]
    by_depth = _transposed(mat)
    del mat
    order = np.lexsort(by_depth[::-1])  # first depth = primary key; shorter stacks first
    by_depth = np.take(by_depth, order, axis=1)
    slen = lengths[order]
    lcp = np.zeros(n_stacks, dtype=np.int64)
    same = np.ones(n_stacks - 1, dtype=bool)
    for d in range(maxd):  # longest common prefix with the previous stack
        row = by_depth[d]
        same &= row[1:] == row[:-1]
        if not same.any():
            break
        lcp[1:] += same
    lcp = np.minimum(lcp, slen)
    # new nodes: cells (s, d) with lcp[s] <= d < slen[s], listed level by level (stacks in
    # sorted order within a level, so parents never move backwards)
    fid_of_key = np.concatenate([np.zeros(1, np.uint64), uf.astype(np.uint64)])
    out_id: list[np.ndarray] = []
    out_parent: list[np.ndarray] = []
    out_fid: list[np.ndarray] = []
    out_row: list[np.ndarray] = []
    last_row = np.full(n_stacks, -1, dtype=np.int64)  # row of each stack's deepest node so far
    prev_ids = np.full(1, np.uint64(ROOT_ID), dtype=np.uint64)
    prev_cells = np.zeros(1, dtype=np.int64)
    prev_first = -1  # row of the previous level's first node (-1: the root)
    rows = 0
    for d in range(maxd):
        cells = np.flatnonzero((lcp <= d) & (slen > d))
        if len(cells) == 0:
            break
        if d == 0:
            parent = np.zeros(len(cells), dtype=np.int64)
        else:
            # a stack with a node one level up is its own parent's stack; a stack whose new
            # nodes start here hangs below the latest node one level up of an earlier stack
            parent = last_row[cells] - prev_first
            starting = np.flatnonzero(lcp[cells] == d)
            parent[starting] = np.searchsorted(prev_cells, cells[starting]) - 1
        fid_d = fid_of_key[by_depth[d, cells]]
        pids = prev_ids[parent]
        ids = mix(pids, fid_d)
        last_row[cells] = np.arange(rows, rows + len(cells), dtype=np.int64)
        out_id.append(ids)
        out_parent.append(pids)
        out_fid.append(fid_d)
        out_row.append(parent + prev_first if d else np.full(len(cells), -1, dtype=np.int64))
        prev_ids, prev_cells, prev_first = ids, cells, rows
        rows += len(cells)
    owner = np.where(slen > lcp, np.arange(n_stacks, dtype=np.int64), -1)
    np.maximum.accumulate(owner, out=owner)  # a duplicate stack's leaf is its twin's
    leaf_row = np.empty(n_stacks, dtype=np.int64)
    leaf_row[order] = np.where((slen > 0) & (owner >= 0), last_row[np.maximum(owner, 0)], -1)
    depth = np.repeat(np.arange(1, len(out_id) + 1, dtype=np.uint32), [len(a) for a in out_id])
    return np.concatenate(out_id), np.concatenate(out_parent), np.concatenate(out_fid), depth, leaf_row, np.concatenate(out_row)


def _transposed(mat: np.ndarray, block: int = 2048) -> np.ndarray:
    """``mat.T`` as a contiguous array, copied a block of rows at a time (each block stays
    in cache; several times faster than one strided copy of a tall matrix)."""
    out = np.empty((mat.shape[1], mat.shape[0]), dtype=mat.dtype)
    for b in range(0, mat.shape[0], block):
        out[:, b : b + block] = mat[b : b + block].T
    return out


def _chain_node_ids(offsets: np.ndarray, fid: np.ndarray) -> np.ndarray:
    """Node id of every stack element: ``mix(node of previous element, frame)``, root first."""
    node = np.empty(len(fid), dtype=np.uint64)
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    if len(fid) == 0:
        return node
    idx = starts[lengths > 0]
    node[idx] = mix(np.full(len(idx), np.uint64(ROOT_ID), dtype=np.uint64), fid[idx])
    for d in range(1, int(lengths.max())):
        idx = starts[lengths > d] + d
        node[idx] = mix(node[idx - 1], fid[idx])
    return node


def _label_columns(stacks: Stacks, n: int) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """``(code, ids, labels)``: every stack's label set as a dense ``code`` into the
    distinct label set ids ``ids``, and the long-form labels table."""
    if stacks.label_ids is not None:
        ids, code = np.unique(np.asarray(stacks.label_ids, dtype=np.uint64), return_inverse=True)
        return code.reshape(-1), ids, empty_labels()
    if stacks.label_index is None or (stacks.label_set_ids is None and not stacks.label_sets):
        return np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.uint64), empty_labels()
    index = np.asarray(stacks.label_index, dtype=np.int64)
    if stacks.label_set_ids is not None:
        ids = np.asarray(stacks.label_set_ids, dtype=np.uint64)
        labels = stacks.labels if stacks.labels is not None else empty_labels()
    else:
        sets = stacks.label_sets
        ids = labels_ids(sets)
        labels = labels_table(ids, [len(ls) for ls in sets], [k for ls in sets for k, _ in ls], [v for ls in sets for _, v in ls])
        if any(len(set(ls)) < len(ls) for ls in sets):
            labels = labels.unique()
    if len(np.unique(ids)) < len(ids):  # two sets with equal text: one code
        ids, code = np.unique(ids, return_inverse=True)
        return code.reshape(-1)[index], ids, labels.unique()
    return index, ids, labels


def labels_table(ids: np.ndarray, sizes: Sequence[int] | np.ndarray, keys: list[str], values: list[str]) -> pl.DataFrame:
    """The long-form labels table of sets with ids ``ids``: set ``g`` has ``sizes[g]``
    pairs, listed in order in ``keys``/``values``."""
    return _table({"labels": np.repeat(ids, sizes), "key": keys, "value": values}, LABELS_SCHEMA)


def _table(columns: dict[str, object], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A DataFrame of ``columns`` (numpy arrays or lists) typed by ``schema``, built
    column by column and joined with ``hstack`` (a small table costs a few µs per column,
    not the ~50 µs of ``pl.DataFrame(dict, schema=...)``)."""
    series = [_series(name, columns[name], dtype) for name, dtype in schema.items()]
    return series[0].to_frame().hstack(series[1:])


_NUMPY_OF = {pl.UInt64: np.dtype(np.uint64), pl.UInt32: np.dtype(np.uint32), pl.Int64: np.dtype(np.int64)}


def _series(name: str, values: object, dtype: pl.DataType) -> pl.Series:
    """``pl.Series(name, values, dtype=dtype)``, skipping the dtype conversion when the
    values already have it (a numpy array of that dtype, a non-empty list of str: polars
    infers String from the values, and refuses a list that mixes in other types)."""
    if isinstance(values, np.ndarray):
        if values.dtype == _NUMPY_OF.get(dtype):  # type: ignore[call-overload]
            return pl.Series(name, values)
    elif dtype == pl.Utf8 and isinstance(values, list) and values and isinstance(values[0], str):
        return pl.Series(name, values)
    return pl.Series(name, values, dtype=dtype)


SMALL = 50_000
"""Below this many rows numpy sorting beats a polars query (whose fixed cost is ~0.2 ms)."""


def _aggregate_unlabelled(node: np.ndarray, values: np.ndarray, cols: list[str]) -> pl.DataFrame:
    """Exact group-by-sum over node ids alone (the common case: no sample labels)."""
    from fleetprof.model.groupsum import sum_by_key

    keys, sums = sum_by_key(node.astype(np.uint64, copy=False), values.astype(np.int64, copy=False))
    sums = sums.reshape(len(keys), len(cols))
    keep = (sums != 0).any(axis=1)
    data = {"node_id": keys[keep], "labels": np.zeros(int(keep.sum()), dtype=np.uint64)}
    data |= {c: sums[keep, i] for i, c in enumerate(cols)}
    return pl.DataFrame(data, schema={"node_id": U64, "labels": U64} | {c: pl.Int64 for c in cols})


def _first_distinct(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key."""
    if len(keys) > SMALL:
        return pl.Series(keys, dtype=pl.UInt64).is_first_distinct().to_numpy()
    mask = np.zeros(len(keys), dtype=bool)
    if len(keys):
        mask[np.unique(keys, return_index=True)[1]] = True
    return mask


def _aggregate_arrays(node: np.ndarray, lab: np.ndarray, values: np.ndarray, cols: list[str]) -> pl.DataFrame:
    """:func:`_aggregate` over arrays: numpy sort-and-reduce for small inputs."""
    if len(node) > SMALL and cols and not lab.any():
        return _aggregate_unlabelled(node, values, cols)
    if len(node) > SMALL:
        return _aggregate(pl.DataFrame({"node_id": node, "labels": lab} | {c: values[:, i] for i, c in enumerate(cols)}), cols)
    order = np.lexsort((lab, node)) if lab.any() else np.argsort(node, kind="stable")
    n, lb, v = node[order], lab[order], values[order]
    brk = np.ones(len(n), dtype=bool)
    if len(n) > 1:
        brk[1:] = (n[1:] != n[:-1]) | (lb[1:] != lb[:-1])
    starts = np.flatnonzero(brk)
    sums = np.add.reduceat(v, starts, axis=0) if len(starts) else v[:0]
    keep = (sums != 0).any(axis=1) if cols else np.ones(len(starts), dtype=bool)
    data = {"node_id": n[starts][keep], "labels": lb[starts][keep]} | {c: sums[keep, i] for i, c in enumerate(cols)}
    return pl.DataFrame(data, schema={"node_id": U64, "labels": U64} | {c: pl.Int64 for c in cols})


def _aggregate(samples: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Group samples by (node, labels), summing values; drop all-zero rows."""
    if samples.height > SMALL and cols and samples["labels"].max() == 0:
        values = samples[cols[0]].to_numpy() if len(cols) == 1 else samples.select(cols).to_numpy()
        return _aggregate_unlabelled(samples["node_id"].to_numpy(), values, cols)
    out = samples.group_by(["node_id", "labels"]).agg(pl.col(c).sum() for c in cols)
    if cols:
        out = out.filter(pl.any_horizontal(pl.col(c) != 0 for c in cols))
    return out.cast({"node_id": U64, "labels": U64} | {c: pl.Int64 for c in cols})


def from_tables(
    sample_types: Sequence[ValueType],
    frames: pl.DataFrame,
    nodes: pl.DataFrame,
    samples: pl.DataFrame,
    labels: pl.DataFrame | None = None,
    **meta: object,
) -> Profile:
    """Assemble a profile from tables that already satisfy the contracts (after a concat,
    say): deduplicates frames/nodes/labels and re-aggregates samples."""
    cols = value_columns(len(sample_types))
    return Profile(
        tuple(sample_types),
        frames.unique(subset="frame_id", keep="first"),
        nodes.unique(subset="node_id", keep="any"),
        _aggregate(samples.select(["node_id", "labels", *cols]), cols),
        (labels if labels is not None else empty_labels()).unique(),
        **meta,  # type: ignore[arg-type]
    )


@dataclass
class Expanded:
    """Stacks of a profile's sample rows, root first, as frame ids and node ids.

    Row ``i`` of ``samples`` has path ``frame_ids[offsets[i]:offsets[i+1]]`` (and the node
    ids of that path in ``node_ids``)."""

    samples: pl.DataFrame
    offsets: np.ndarray
    frame_ids: np.ndarray
    node_ids: np.ndarray


def positions(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row positions of ``queries`` in the unique uint64 array ``keys`` (-1 where absent).

    A hash join, not ``searchsorted``: random probes into a large sorted array are
    cache-bound and several times slower."""
    if len(queries) == 0:
        return np.zeros(0, dtype=np.int64)
    table = pl.DataFrame({"k": keys, "pos": np.arange(len(keys), dtype=np.int64)}, schema={"k": pl.UInt64, "pos": pl.Int64})
    probe = pl.DataFrame({"k": queries}, schema={"k": pl.UInt64})
    out = probe.join(table, on="k", how="left", maintain_order="left")["pos"].fill_null(-1)
    return out.to_numpy()


@dataclass
class DenseTree:
    """The node table as arrays with integer parent positions (``-1`` = root)."""

    node_id: np.ndarray
    parent_pos: np.ndarray
    frame_id: np.ndarray
    depth: np.ndarray


def dense_tree(profile: Profile) -> DenseTree:
    """Node arrays of ``profile`` in node-table order, parents resolved to positions."""
    nodes = profile.nodes
    nid = nodes["node_id"].to_numpy()
    ppos = positions(nid, nodes["parent_id"].to_numpy())
    return DenseTree(nid, ppos, nodes["frame_id"].to_numpy(), nodes["depth"].to_numpy().astype(np.int64))


def expand(profile: Profile) -> Expanded:
    """Walk every sample's leaf up to the root (vectorised: one gather per depth level)."""
    tree = dense_tree(profile)
    samples = profile.samples
    leaf = samples["node_id"].to_numpy()
    real = leaf != np.uint64(ROOT_ID)
    lpos = np.full(len(leaf), -1, dtype=np.int64)
    lpos[real] = positions(tree.node_id, leaf[real])
    if np.any(lpos[real] < 0):
        raise ValueError("profile samples reference nodes missing from the node table")
    depth = np.where(real, tree.depth[np.maximum(lpos, 0)] if len(tree.depth) else 0, 0)
    offsets = np.zeros(len(leaf) + 1, dtype=np.int64)
    np.cumsum(depth, out=offsets[1:])
    out_f = np.empty(int(offsets[-1]), dtype=np.uint64)
    out_n = np.empty(int(offsets[-1]), dtype=np.uint64)
    pos = offsets[1:] - 1
    active = np.nonzero(real)[0]
    cur = lpos[active]
    wpos = pos[active]
    while len(active):
        out_f[wpos] = tree.frame_id[cur]
        out_n[wpos] = tree.node_id[cur]
        cur = tree.parent_pos[cur]
        wpos = wpos - 1
        alive = cur >= 0
        cur, wpos = cur[alive], wpos[alive]
        active = active[alive]
    return Expanded(samples, offsets, out_f, out_n)


def frame_lookup(profile: Profile, ids: np.ndarray, column: str = "name") -> np.ndarray:
    """Vector of ``frames[column]`` for frame ids (object array of str or int array)."""
    fr = profile.frames.sort("frame_id")
    keys = fr["frame_id"].to_numpy()
    vals = fr[column].to_numpy()
    return vals[np.searchsorted(keys, ids)]


def rebuild(profile: Profile, ex: Expanded, keep: np.ndarray | None = None, **meta: object) -> Profile:
    """Re-intern expanded stacks (optionally a per-element ``keep`` mask) into a profile.

    The frame table of ``profile`` must contain every frame id in ``ex.frame_ids``."""
    fids = ex.frame_ids
    offsets = ex.offsets
    if keep is not None:
        lengths = np.diff(offsets)
        counts = np.zeros(len(lengths), np.int64)
        nonempty = lengths > 0
        if len(fids):
            counts[nonempty] = np.add.reduceat(keep.astype(np.int64), offsets[:-1][nonempty])
        fids = fids[keep]
        offsets = np.zeros(len(ex.offsets), dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
    uniq, inv = np.unique(fids, return_inverse=True)
    cols = profile.value_cols
    values = ex.samples.select(cols).to_numpy().astype(np.int64) if cols else np.zeros((ex.samples.height, 0), np.int64)
    lab = ex.samples["labels"].to_numpy()
    labelled = bool(lab.any())
    stacks = Stacks(names=[], files=[], offsets=offsets, frames=inv, values=values, label_ids=lab if labelled else None)
    out = build(stacks, profile.sample_types, frame_id_table=uniq, **_meta(profile) | meta)
    if labelled:
        out = replace(out, labels=profile.labels)
    frames = profile.frames.filter(pl.col("frame_id").is_in(pl.Series(uniq, dtype=pl.UInt64).implode()))
    return replace(out, frames=frames)


def _meta(p: Profile) -> dict[str, object]:
    return {
        "period_type": p.period_type,
        "period": p.period,
        "default_sample_type": p.default_sample_type,
        "time_nanos": p.time_nanos,
        "duration_nanos": p.duration_nanos,
        "truncated_stacks": p.truncated_stacks,
        "comments": p.comments,
    }


def meta_of(p: Profile) -> dict[str, object]:
    """Metadata fields of ``p`` as keyword arguments for :func:`build`/:func:`from_tables`."""
    return _meta(p)
