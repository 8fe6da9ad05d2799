"""Shared, vectorised flame-graph layout of a profile's call tree.

Two stages, both numpy over whole levels (one Python iteration per depth level, never per
node):

1. :func:`call_tree` turns a :class:`~fleetprof.model.Profile` and a value column into an
   *unordered* :class:`CallTree` — one row per call-tree node with ``self``/``total``
   (exact int64) and a parent index. With ``by_name=True`` (flame graphs) sibling frames
   that share a function name are merged, as Pyroscope and ``flamegraph.pl`` aggregate by
   name; with ``by_name=False`` (tree JSON) every model frame (name, file) stays distinct.
   Nodes whose total is zero are dropped. Values are assumed non-negative.
   :func:`combine` aligns two trees (base, candidate) on their name paths for diffs: the
   result has two value columns, zeros where a path exists on one side only.
2. :func:`layout` orders the tree in DFS pre-order with children sorted by name (byte
   order) and assigns every node its x offset in ticks per value column: a node's own
   ``self`` comes first, then its children left to right (Pyroscope's convention). Row 0
   is the root (depth 0, named ``"total"``).

Pruning keeps every parent's total exact:

* :func:`fold_max_nodes` mimics Pyroscope's ``maxNodes``: the ``max_nodes``-th largest
  node total is the cut-off; siblings below it are folded into one ``"other"`` child per
  parent (``self == total ==`` their summed totals), placed after the kept children.
* :meth:`Layout.subset` drops nodes narrower than a threshold (their time stays inside
  the parent as a gap, like ``flamegraph.pl --minwidth``).

:class:`CallTree`, :func:`layout` and :func:`prune_narrow` need numpy only; the functions
that read a :class:`~fleetprof.model.Profile` or hash name paths import the model (and
polars) when called, so a caller holding a call tree already starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

    from fleetprof.model.profile import Profile

ROOT_NAME = "total"
OTHER_NAME = "other"


@dataclass
class CallTree:
    """Unordered call tree (root implicit). Row ``i`` has parent row ``parent[i]`` (``-1``
    = the root), ``depth[i] >= 1``, ``names[name[i]]``, ``files[file[i]]``, and values
    ``self[i, c]``/``total[i, c]`` for value column ``c``. ``key`` is a 64-bit path id
    (name path when built ``by_name``), used to align trees. ``rank`` orders siblings
    (default: the name code, ``names`` being sorted)."""

    parent: np.ndarray
    depth: np.ndarray
    name: np.ndarray
    file: np.ndarray
    key: np.ndarray
    self: np.ndarray
    total: np.ndarray
    root_self: np.ndarray
    root_total: np.ndarray
    names: np.ndarray
    files: np.ndarray
    rank: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.parent)

    @property
    def columns(self) -> int:
        return self.self.shape[1]

    def sibling_rank(self) -> np.ndarray:
        return self.rank if self.rank is not None else self.name.astype(np.int64)


@dataclass
class Layout:
    """A laid-out tree in DFS pre-order; row 0 is the root (depth 0).

    ``x[i, c]`` is the offset in ticks of node ``i`` for value column ``c`` (the root at 0);
    every node spans ``[x, x + total)`` and its children lie inside
    ``[x + self, x + total)``. ``parent`` indexes rows of this layout (-1 for the root)."""

    parent: np.ndarray
    depth: np.ndarray
    name: np.ndarray
    file: np.ndarray
    x: np.ndarray
    self: np.ndarray
    total: np.ndarray
    names: np.ndarray
    files: np.ndarray

    @property
    def size(self) -> int:
        return len(self.parent)

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if self.size else 0

    def subset(self, keep: np.ndarray) -> Layout:
        """Rows where ``keep`` (must be closed under taking the parent, as any threshold on
        ``total`` is); x offsets and totals are unchanged, parents re-indexed."""
        keep = keep.copy()
        keep[0] = True
        newpos = np.cumsum(keep) - 1
        parent = self.parent[keep]
        parent = np.where(parent >= 0, newpos[np.maximum(parent, 0)], -1)
        return Layout(
            parent, self.depth[keep], self.name[keep], self.file[keep], self.x[keep],
            self.self[keep], self.total[keep], self.names, self.files,
        )

    def node_names(self) -> np.ndarray:
        """Name string of every row (object array)."""
        return self.names[self.name]

    def node_files(self) -> np.ndarray:
        return self.files[self.file]


def _unique_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique strings (code-point order == UTF-8 byte order) and the inverse."""
    if len(values) == 0:
        return np.array([], dtype=object), np.zeros(0, dtype=np.int64)
    uniq, inv = np.unique(values.astype(object), return_inverse=True)
    return uniq.astype(object), inv.astype(np.int64)


def _levels(depth: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by depth, shallowest first."""
    if len(depth) == 0:
        return []
    if depth[0] <= depth[-1] and np.all(depth[1:] >= depth[:-1]):  # already level by level
        bounds = np.flatnonzero(depth[1:] != depth[:-1]) + 1
        edges = np.concatenate([[0], bounds, [len(depth)]])
        return [np.arange(a, b, dtype=np.int64) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    small = depth.astype(np.uint16) if int(depth.max()) < 65536 else depth  # radix sort
    order = np.argsort(small, kind="stable")
    bounds = np.flatnonzero(np.diff(depth[order])) + 1
    return np.split(order, bounds)


def _subtree_totals(self_vals: np.ndarray, parent: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
    """Exact int64 subtree sums, propagated deepest level first (a level whose parents are
    in non-decreasing order adds whole runs of siblings at once)."""
    total = self_vals.copy()
    for level in reversed(levels):
        level = level[parent[level] >= 0]
        if len(level) == 0:
            continue
        p = parent[level]
        if np.all(p[1:] >= p[:-1]):
            starts = np.flatnonzero(np.concatenate([[True], p[1:] != p[:-1]]))
            total[p[starts]] += np.add.reduceat(total[level], starts, axis=0)
        else:
            np.add.at(total, p, total[level])
    return total


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class _HashIndex:
    """Exact positions of uint64 keys: a vectorised open-addressing table (multiplicative
    hash, linear probing, load <= 1/2) over a *unique* key array. Built and probed with a
    few whole-array numpy passes plus rounds over the (few) rows that collided, so probing
    many queries into a small table (samples, frames) stays in cache."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.ascontiguousarray(keys, dtype=np.uint64)
        self.bits = max(4, (2 * len(self.keys)).bit_length())
        self.pos = np.full(1 << self.bits, -1, dtype=np.int64)
        slot = self._home(self.keys)
        todo = np.arange(len(self.keys), dtype=np.int64)
        mask = (1 << self.bits) - 1
        while len(todo):
            s = slot[todo]
            free = self.pos[s] < 0
            self.pos[s[free]] = todo[free]  # among rivals for one slot, the last write wins
            todo = todo[self.pos[s] != todo]
            slot[todo] = (slot[todo] + 1) & mask
        self.slot_keys = np.zeros(1 << self.bits, dtype=np.uint64)
        used = self.pos >= 0
        self.slot_keys[used] = self.keys[self.pos[used]]

    def _home(self, q: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((q * _GOLDEN) >> np.uint64(64 - self.bits)).astype(np.int64)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Position of every query in ``keys`` (-1 where absent)."""
        q = np.ascontiguousarray(queries, dtype=np.uint64)
        out = np.full(len(q), -1, dtype=np.int64)
        slot = self._home(q)
        pos = self.pos[slot]
        hit = (pos >= 0) & (self.slot_keys[slot] == q)
        out[hit] = pos[hit]
        todo = np.flatnonzero(~hit & (pos >= 0))
        mask = (1 << self.bits) - 1
        while len(todo):
            s = (slot[todo] + 1) & mask
            slot[todo] = s
            p = self.pos[s]
            hit = (p >= 0) & (self.slot_keys[s] == q[todo])
            out[todo[hit]] = p[hit]
            todo = todo[~hit & (p >= 0)]
        return out


def _lookup_small(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Positions of ``queries`` in the unique array ``keys`` (-1 if absent); an in-cache
    hash table when ``keys`` is small, else a hash join."""
    from fleetprof.model.profile import positions

    if len(keys) > (1 << 20) or len(keys) == 0:
        return positions(keys, queries)
    return _HashIndex(keys).lookup(queries)


def _parent_positions(nid: np.ndarray, pid: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
    """Row of every node's parent (-1 for top-level nodes), resolved level by level: each
    level's parents are looked up among the previous level only (small sorted tables stay
    in cache, several times faster than one join over the whole node table)."""
    parent = np.full(len(nid), -1, dtype=np.int64)
    for prev, level in zip(levels, levels[1:], strict=False):
        keys = nid[prev]
        order = np.argsort(keys)
        sk = keys[order]
        q = pid[level]
        at = np.minimum(np.searchsorted(sk, q), len(sk) - 1)
        parent[level] = np.where(sk[at] == q, prev[order[at]], -1)
    if len(levels) > 1 and np.any(parent[np.concatenate(levels[1:])] < 0):
        raise ValueError("profile nodes reference parents missing from the node table")
    return parent


def _hinted_parents(nodes: pl.DataFrame, nid: np.ndarray, pid: np.ndarray) -> np.ndarray | None:
    """Parent rows remembered by :func:`~fleetprof.model.build` for this node table, once
    checked against ``parent_id`` (``None`` when there is no hint or it does not hold)."""
    from fleetprof.model.hashing import ROOT_ID
    from fleetprof.model.profile import parent_rows_hint

    hint = parent_rows_hint(nodes)
    if hint is None or len(hint) != len(nid) or (len(hint) and int(hint.max()) >= len(nid)):
        return None
    top = hint < 0
    if np.any(pid[top] != np.uint64(ROOT_ID)) or not np.array_equal(nid[hint[~top]], pid[~top]):
        return None
    return hint


def _preorder_parents(nid: np.ndarray, pid: np.ndarray, depth: np.ndarray, levels: list[np.ndarray]) -> np.ndarray | None:
    """Parent rows if the node table is in DFS pre-order (as :func:`~fleetprof.model.build`
    writes it), else ``None``. In pre-order the depth rises by at most one from row to row
    and a node's parent is the nearest earlier row one level up; that guess (sorted
    searches, cache-friendly) is checked against ``parent_id`` for every node."""
    from fleetprof.model.hashing import ROOT_ID

    n = len(nid)
    if n == 0 or depth[0] != 1 or np.any(np.diff(depth) > 1):
        return None
    parent = np.full(n, -1, dtype=np.int64)
    if np.any(pid[levels[0]] != np.uint64(ROOT_ID)):
        return None
    for prev, level in zip(levels, levels[1:], strict=False):
        at = np.searchsorted(prev, level) - 1  # both ascending; at >= 0 since depth rises by <= 1
        parent[level] = prev[at]
        if not np.array_equal(nid[prev[at]], pid[level]):
            return None
    return parent


def _preorder_totals(self_vals: np.ndarray, parent: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
    """Exact subtree sums of a pre-order table: a subtree is the row range ``[i, end)``
    where ``end`` is the next row of the same level or the end of the parent's range."""
    n = len(self_vals)
    end = np.full(n, n, dtype=np.int64)
    for level in levels:
        nxt = np.empty(len(level), dtype=np.int64)
        nxt[:-1] = level[1:]
        nxt[-1:] = n
        p = parent[level]
        end[level] = np.where(p >= 0, np.minimum(nxt, end[np.maximum(p, 0)]), nxt)
    csum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(self_vals, out=csum[1:])
    return csum[end] - csum[:-1]


def _hinted_self_values(samples: pl.DataFrame, col: str, nid: np.ndarray) -> tuple[np.ndarray | None, int]:
    """:func:`_self_values` from the node rows :func:`~fleetprof.model.build` remembered for
    this samples table, once checked against its ``node_id`` (``None`` without a hint)."""
    from fleetprof.model.hashing import ROOT_ID
    from fleetprof.model.profile import sample_rows_hint

    rows = sample_rows_hint(samples)
    if rows is None or len(rows) != samples.height or (len(rows) and int(rows.max()) >= len(nid)):
        return None, 0
    sn = samples["node_id"].to_numpy()
    root = rows < 0
    if np.any(sn[root] != np.uint64(ROOT_ID)) or not np.array_equal(nid[rows[~root]], sn[~root]):
        return None, 0
    sv = samples[col].to_numpy().astype(np.int64)
    self_vals = np.zeros(len(nid), dtype=np.int64)
    np.add.at(self_vals, rows[~root], sv[~root])
    return self_vals, int(sv[root].sum())


def _self_values(nid: np.ndarray, sn: np.ndarray, sv: np.ndarray) -> tuple[np.ndarray, int]:
    """Self value of every node row (samples of the same node summed) and the root's."""
    from fleetprof.model.hashing import ROOT_ID
    from fleetprof.model.profile import positions

    self_vals = np.zeros(len(nid), dtype=np.int64)
    root = sn == np.uint64(ROOT_ID)
    root_self = int(sv[root].sum())
    sn, sv = sn[~root], sv[~root]
    if len(sn) == 0:
        return self_vals, root_self
    ukey, inv = np.unique(sn, return_inverse=True)
    sums = np.zeros(len(ukey), dtype=np.int64)
    np.add.at(sums, inv, sv)
    if len(ukey) <= (1 << 22):
        at = _HashIndex(ukey).lookup(nid)
        hit = at >= 0
        self_vals[hit] = sums[at[hit]]
    else:
        spos = positions(nid, ukey)
        np.add.at(self_vals, spos[spos >= 0], sums[spos >= 0])
    return self_vals, root_self


def call_tree(
    profile: Profile,
    type_index: int,
    *,
    by_name: bool = True,
    min_total: Callable[[int], float] | None = None,
) -> CallTree:
    """Call tree of value column ``type_index`` of ``profile`` (see module docstring).

    ``min_total`` maps the root total to a threshold: nodes whose total is below it are
    dropped as :func:`prune_narrow` would drop them, but before frames are looked up (and
    after merging by name, which can only widen nodes)."""
    import polars as pl

    col = f"v{type_index}"
    nodes = profile.nodes
    nid = nodes["node_id"].to_numpy()
    pid = nodes["parent_id"].to_numpy()
    depth = nodes["depth"].to_numpy().astype(np.int64)
    levels = _levels(depth)
    parent = _hinted_parents(nodes, nid, pid)
    preorder = False
    if parent is None:
        parent = _preorder_parents(nid, pid, depth, levels)
        preorder = parent is not None
    if parent is None:
        parent = _parent_positions(nid, pid, levels)
    self_vals, root_self = _hinted_self_values(profile.samples, col, nid)
    if self_vals is None:
        samples = profile.samples.select("node_id", col).filter(pl.col(col) != 0)
        self_vals, root_self = _self_values(nid, samples["node_id"].to_numpy(), samples[col].to_numpy().astype(np.int64))
    if preorder:
        total = _preorder_totals(self_vals, parent, levels)
    else:
        total = _subtree_totals(self_vals, parent, levels)
    root_total = root_self + int(total[parent < 0].sum())

    frames = profile.frames
    names, fname = _unique_strings(frames["name"].to_numpy())
    files, ffile = _unique_strings(frames["file"].to_numpy())
    merge = by_name and len(names) < frames.height  # some name spans several frames
    keep = total != 0
    if min_total is not None and not merge:
        keep &= total >= min_total(root_total)
    fid = nodes["frame_id"].to_numpy()
    if not keep.all():
        newpos = np.cumsum(keep) - 1
        p = parent[keep]
        parent = np.where(p >= 0, newpos[np.maximum(p, 0)], -1)
        depth, fid = depth[keep], fid[keep]
        self_vals, total, nid = self_vals[keep], total[keep], nid[keep]
        levels = _levels(depth)
    fpos = _lookup_small(frames["frame_id"].to_numpy(), fid)
    if np.any(fpos < 0):
        raise ValueError("profile nodes reference frames missing from the frame table")
    name = fname[fpos] if len(fpos) else np.zeros(0, np.int64)
    file = ffile[fpos] if len(fpos) else np.zeros(0, np.int64)
    tree = CallTree(
        parent=parent, depth=depth, name=name, file=file, key=nid,
        self=self_vals[:, None], total=total[:, None],
        root_self=np.array([root_self], np.int64), root_total=np.array([root_total], np.int64),
        names=names, files=files,
    )
    if merge:
        tree = _merge_by_name(tree, levels)
        if min_total is not None:
            tree = prune_narrow(tree, min_total(root_total))
    return tree


def _name_keys(tree: CallTree, levels: list[np.ndarray]) -> np.ndarray:
    """Path id of every row: ``mix(parent path id, hash(name))`` (root = ``ROOT_ID``)."""
    from fleetprof.model.hashing import ROOT_ID, frame_ids, mix

    nhash = frame_ids(list(tree.names), [""] * len(tree.names))
    key = np.zeros(tree.size, dtype=np.uint64)
    for level in levels:
        p = tree.parent[level]
        pk = np.where(p >= 0, key[np.maximum(p, 0)], np.uint64(ROOT_ID)).astype(np.uint64)
        key[level] = mix(pk, nhash[tree.name[level]])
    return key


def _merge_by_name(tree: CallTree, levels: list[np.ndarray]) -> CallTree:
    """Merge sibling rows with equal names (their subtrees merge recursively)."""
    key = _name_keys(tree, levels)
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    if len(ukey) == tree.size:
        tree.key = key
        return tree
    k = tree.columns
    self_vals = np.zeros((len(ukey), k), dtype=np.int64)
    total = np.zeros((len(ukey), k), dtype=np.int64)
    np.add.at(self_vals, inv, tree.self)
    np.add.at(total, inv, tree.total)
    p = tree.parent[first]
    parent = np.where(p >= 0, inv[np.maximum(p, 0)], -1)
    return CallTree(
        parent=parent, depth=tree.depth[first], name=tree.name[first], file=tree.file[first],
        key=ukey, self=self_vals, total=total, root_self=tree.root_self,
        root_total=tree.root_total, names=tree.names, files=tree.files,
    )


def combine(base: CallTree, cand: CallTree) -> CallTree:
    """Align two single-column trees on their path keys: two value columns (base, cand)."""
    from fleetprof.model.profile import positions

    names, ninv = _unique_strings(np.concatenate([base.names, cand.names]))
    files, finv = _unique_strings(np.concatenate([base.files, cand.files]))
    keys = np.unique(np.concatenate([base.key, cand.key]))
    n = len(keys)
    parent = np.full(n, -1, dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    name = np.zeros(n, dtype=np.int64)
    file = np.zeros(n, dtype=np.int64)
    self_vals = np.zeros((n, 2), dtype=np.int64)
    total = np.zeros((n, 2), dtype=np.int64)
    name_off = [0, len(base.names)]
    file_off = [0, len(base.files)]
    for c, t in enumerate((base, cand)):
        pos = positions(keys, t.key)
        parent[pos] = np.where(t.parent >= 0, pos[np.maximum(t.parent, 0)], -1)
        depth[pos] = t.depth
        name[pos] = ninv[t.name + name_off[c]]
        file[pos] = finv[t.file + file_off[c]]
        self_vals[pos, c] = t.self[:, 0]
        total[pos, c] = t.total[:, 0]
    return CallTree(
        parent=parent, depth=depth, name=name, file=file, key=keys, self=self_vals, total=total,
        root_self=np.concatenate([base.root_self, cand.root_self]),
        root_total=np.concatenate([base.root_total, cand.root_total]),
        names=names, files=files,
    )


def max_nodes_cutoff(tree: CallTree, max_nodes: int | None, *, count_root: bool = False) -> int:
    """Pyroscope's ``minValue``: the ``max_nodes``-th largest node total (max over value
    columns), or 0 when the tree has at most ``max_nodes`` nodes (``count_root`` counts
    the root among them, as Pyroscope's diff does)."""
    if not max_nodes or max_nodes < 1:
        return 0
    tot = tree.total.max(axis=1) if tree.size else np.zeros(0, np.int64)
    if count_root:
        tot = np.concatenate([tot, [int(tree.root_total.max())]])
    if len(tot) <= max_nodes:
        return 0
    return int(np.partition(tot, len(tot) - max_nodes)[len(tot) - max_nodes])


def fold_max_nodes(tree: CallTree, max_nodes: int | None, *, diff: bool = False) -> CallTree:
    """Keep nodes whose total reaches :func:`max_nodes_cutoff`; fold the rest into one
    ``"other"`` child per kept parent (see module docstring). Single trees also fold
    frames literally named ``"other"`` (as Pyroscope does); diff trees keep them."""
    from fleetprof.model.hashing import ROOT_ID, mix

    cutoff = max_nodes_cutoff(tree, max_nodes, count_root=diff)
    if cutoff <= 0 or tree.size == 0:
        return tree
    keep = (tree.total >= cutoff).any(axis=1)
    other_code = np.searchsorted(tree.names, OTHER_NAME)
    is_other = (other_code < len(tree.names)) & (tree.name == other_code) if len(tree.names) else np.zeros(tree.size, bool)
    keep = (keep | is_other) if diff else (keep & ~is_other)
    levels = _levels(tree.depth)
    for level in levels:
        p = tree.parent[level]
        keep[level] &= np.where(p >= 0, keep[np.maximum(p, 0)], True)
    p = tree.parent
    folded = ~keep & np.where(p >= 0, keep[np.maximum(p, 0)], True)
    fp = p[folded]
    uparent, inv = np.unique(fp, return_inverse=True)
    osum = np.zeros((len(uparent), tree.columns), dtype=np.int64)
    np.add.at(osum, inv, tree.total[folded])
    nz = osum.any(axis=1)
    uparent, osum = uparent[nz], osum[nz]
    names = tree.names
    if not (len(names) and other_code < len(names) and names[other_code] == OTHER_NAME):
        names = np.insert(names, other_code, OTHER_NAME).astype(object)
        shift = lambda a: a + (a >= other_code)  # noqa: E731
    else:
        shift = lambda a: a  # noqa: E731
    files, fshift = tree.files, 0
    if not (len(files) and files[0] == ""):  # "" sorts first; "other" rows use file code 0
        files, fshift = np.concatenate([np.array([""], dtype=object), files]).astype(object), 1
    newpos = np.cumsum(keep) - 1
    kp = tree.parent[keep]
    parent = np.where(kp >= 0, newpos[np.maximum(kp, 0)], -1)
    oparent = np.where(uparent >= 0, newpos[np.maximum(uparent, 0)], -1)
    odepth = np.where(uparent >= 0, tree.depth[np.maximum(uparent, 0)] + 1, 1)
    pkey = np.where(uparent >= 0, tree.key[np.maximum(uparent, 0)], np.uint64(ROOT_ID)).astype(np.uint64)
    okey = mix(pkey, np.full(len(pkey), np.uint64(0x6F74686572), dtype=np.uint64))
    kept_rank = shift(tree.sibling_rank()[keep])
    rank = np.concatenate([kept_rank, np.full(len(uparent), len(names) + 1, np.int64)])
    return CallTree(
        parent=np.concatenate([parent, oparent]),
        depth=np.concatenate([tree.depth[keep], odepth]),
        name=np.concatenate([shift(tree.name[keep]), np.full(len(uparent), other_code, np.int64)]),
        file=np.concatenate([tree.file[keep] + fshift, np.zeros(len(uparent), np.int64)]),
        key=np.concatenate([tree.key[keep], okey]),
        self=np.concatenate([tree.self[keep], osum]),
        total=np.concatenate([tree.total[keep], osum]),
        root_self=tree.root_self, root_total=tree.root_total,
        names=names, files=files, rank=rank,
    )


def prune_narrow(tree: CallTree, min_total: float, *, keep: np.ndarray | None = None) -> CallTree:
    """Drop nodes whose total (summed over value columns) is below ``min_total`` (or, with
    ``keep``, the rows not kept; the mask must be closed under taking the parent, as any
    threshold on totals is). Parents keep their totals: the dropped time becomes a gap at
    the end of the parent once laid out."""
    if keep is None:
        keep = tree.total.sum(axis=1) >= min_total
    if keep.all():
        return tree
    newpos = np.cumsum(keep) - 1
    p = tree.parent[keep]
    return CallTree(
        parent=np.where(p >= 0, newpos[np.maximum(p, 0)], -1), depth=tree.depth[keep],
        name=tree.name[keep], file=tree.file[keep], key=tree.key[keep], self=tree.self[keep],
        total=tree.total[keep], root_self=tree.root_self, root_total=tree.root_total,
        names=tree.names, files=tree.files, rank=None if tree.rank is None else tree.rank[keep],
    )


def _preorder(parent: np.ndarray, levels: list[np.ndarray], lrank: np.ndarray) -> np.ndarray:
    """DFS pre-order position of every row, children in ``lrank`` order: a node comes
    right after its parent plus the subtree sizes of its earlier siblings."""
    n = len(parent)
    size = _subtree_totals(np.ones(n, dtype=np.int64), parent, levels)
    pre = np.zeros(n, dtype=np.int64)
    for level in levels[1:]:
        idx = level[np.argsort(lrank[level], kind="stable")]  # lrank is the level order
        p = parent[idx]
        start = np.ones(len(idx), dtype=bool)
        start[1:] = p[1:] != p[:-1]
        first = np.maximum.accumulate(np.where(start, np.arange(len(idx)), 0))
        sz = size[idx]
        excl = np.cumsum(sz) - sz
        pre[idx] = pre[p] + 1 + excl - excl[first]
    return pre


def _level_layout(
    parent: np.ndarray, self_vals: np.ndarray, total: np.ndarray, rank: np.ndarray, levels: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """x offsets and pre-order positions of the rows, level by level (any values)."""
    n, k = total.shape
    x = np.zeros((n, k), dtype=np.int64)
    lrank = np.zeros(n, dtype=np.int64)
    rmax = int(rank.max()) + 1 if n else 1
    for level in levels[1:]:
        p = parent[level]
        if len(level) * rmax < 2**62:
            order = np.argsort(lrank[p] * rmax + rank[level], kind="stable")
        else:
            order = np.lexsort((rank[level], lrank[p]))
        idx = level[order]
        p = p[order]
        lrank[idx] = np.arange(len(idx))
        start = np.ones(len(idx), dtype=bool)
        start[1:] = p[1:] != p[:-1]
        first = np.maximum.accumulate(np.where(start, np.arange(len(idx)), 0))
        t = total[idx]
        excl = np.cumsum(t, axis=0) - t
        x[idx] = x[p] + self_vals[p] + excl - excl[first]
    return x, _preorder(parent, levels, lrank)


def _positive_layout(
    parent: np.ndarray, depth: np.ndarray, self_vals: np.ndarray, total: np.ndarray, rank: np.ndarray,
    levels: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_level_layout` of a single-column tree whose totals are all positive (and
    self values not negative, so children lie within their parent), with
    whole-tree sorts instead of per-level ones: siblings are ordered by one stable sort on
    (parent, rank), offsets are summed down the levels (two array operations per level),
    and the pre-order is the order of (x, depth): a node spans ``[x, x + total)``, its
    descendants lie inside and later siblings' spans start at or after its end, so with
    positive totals a node precedes exactly the nodes to its right or below it."""
    n = len(parent)
    kids = np.lexsort((rank[1:], parent[1:])) + 1
    p = parent[kids]
    start = np.ones(len(kids), dtype=bool)
    start[1:] = p[1:] != p[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(len(kids)), 0))
    t = total[kids]
    with np.errstate(over="ignore"):  # the running sum may wrap; differences within a parent are exact
        excl = np.cumsum(t, axis=0) - t
        off = np.zeros_like(total)
        off[kids] = self_vals[p] + excl - excl[first]
    x = np.zeros_like(total)
    for level in levels[1:]:
        x[level] = x[parent[level]] + off[level]
    order = np.lexsort((depth, x[:, 0]))
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    return x, inv


def layout(tree: CallTree) -> Layout:
    """Order ``tree`` in DFS pre-order (children by name) and compute x offsets."""
    n = tree.size + 1
    k = tree.columns
    names = tree.names
    root_code = np.searchsorted(names, ROOT_NAME) if len(names) else 0
    if not (len(names) and root_code < len(names) and names[root_code] == ROOT_NAME):
        names = np.concatenate([names, np.array([ROOT_NAME], dtype=object)]).astype(object)
        root_code = len(names) - 1
    files = tree.files if len(tree.files) else np.array([""], dtype=object)
    # row 0 = root; tree row i -> row i + 1
    parent = np.concatenate([[-1], np.where(tree.parent >= 0, tree.parent + 1, 0)]).astype(np.int64)
    depth = np.concatenate([[0], tree.depth]).astype(np.int64)
    self_vals = np.concatenate([tree.root_self[None, :], tree.self]).astype(np.int64)
    total = np.concatenate([tree.root_total[None, :], tree.total]).astype(np.int64)
    rank = np.concatenate([[0], tree.sibling_rank()]).astype(np.int64)
    levels = _levels(depth)
    if k == 1 and n > 1 and bool(np.all(total > 0)) and bool(np.all(self_vals >= 0)):
        x, inv = _positive_layout(parent, depth, self_vals, total, rank, levels)
    else:
        x, inv = _level_layout(parent, self_vals, total, rank, levels)
    dfs = np.empty(n, dtype=np.int64)
    dfs[inv] = np.arange(n)
    par = parent[dfs]
    par = np.where(par >= 0, inv[np.maximum(par, 0)], -1)
    name = np.concatenate([[root_code], tree.name]).astype(np.int64)[dfs]
    file = np.concatenate([[0], tree.file]).astype(np.int64)[dfs]
    return Layout(par, depth[dfs], name, file, x[dfs], self_vals[dfs], total[dfs], names, files)


def profile_layout(
    profile: Profile, type_index: int, *, max_nodes: int | None = None, by_name: bool = True
) -> Layout:
    """:func:`call_tree` → :func:`fold_max_nodes` → :func:`layout` for one profile."""
    tree = call_tree(profile, type_index, by_name=by_name)
    return layout(fold_max_nodes(tree, max_nodes))


def diff_layout(base: Profile, cand: Profile, type_index: int, *, max_nodes: int | None = None) -> Layout:
    """Layout of the name-aligned union of two profiles (columns: base, candidate)."""
    tree = combine(call_tree(base, type_index), call_tree(cand, type_index))
    return layout(fold_max_nodes(tree, max_nodes, diff=True))
