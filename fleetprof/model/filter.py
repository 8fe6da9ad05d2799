"""Filter a profile's stacks by frame regexes or by call-tree position (like pprof's
``-focus``, ``-show_from`` and ``-ignore``).

Contracts (patterns are Python regexes applied with ``re.search`` to the function name,
and also to the file name when ``match_file=True``):

* :func:`focus` keeps the stacks that contain at least one matching frame, with their
  full paths (pprof ``focus``). With ``reroot=True`` every kept stack loses the frames
  above its root-most match, so the matching frames become top-level (pprof
  ``show_from``); :func:`show_from` is that shorthand. Empty stacks never match.
* :func:`ignore` drops the stacks that contain a matching frame; everything else,
  including empty stacks, is kept unchanged.
* :func:`keep_subtree` keeps the stacks that pass through a given call-tree node — by
  node id, or by frame-name path from the root (``["main", "handle"]``; every node
  matching the path counts) — with full paths or, with ``reroot=True``, re-rooted at it.

Values of kept stacks are unchanged (all value columns), so totals of a filtered profile
are the sums of the kept stacks. Labels and metadata are preserved.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from fleetprof.model.hashing import ROOT_ID
from fleetprof.model.paths import (
    any_per_stack,
    first_per_stack,
    matching_frames,
    position_in_stack,
    stack_of_element,
    subset,
)
from fleetprof.model.profile import Expanded, Profile, expand, frame_lookup, rebuild


def focus(profile: Profile, pattern: str | re.Pattern[str], *, reroot: bool = False, match_file: bool = False) -> Profile:
    """Keep stacks through a frame matching ``pattern`` (module contract)."""
    ex = expand(profile)
    mask = np.isin(ex.frame_ids, matching_frames(profile, pattern, match_file=match_file))
    return _keep_through(profile, ex, mask, reroot)


def show_from(profile: Profile, pattern: str | re.Pattern[str], *, match_file: bool = False) -> Profile:
    """:func:`focus` with ``reroot=True``: drop the frames above the root-most match."""
    return focus(profile, pattern, reroot=True, match_file=match_file)


def ignore(profile: Profile, pattern: str | re.Pattern[str], *, match_file: bool = False) -> Profile:
    """Drop stacks containing a frame matching ``pattern`` (module contract)."""
    ex = expand(profile)
    mask = np.isin(ex.frame_ids, matching_frames(profile, pattern, match_file=match_file))
    rows = ~any_per_stack(ex, mask)
    if rows.all():
        return profile
    return rebuild(profile, subset(ex, rows))


def keep_subtree(profile: Profile, node: int | Sequence[str], *, reroot: bool = False) -> Profile:
    """Keep stacks through the node ``node`` (an id, or a root-first frame-name path)."""
    ids = np.array([node], dtype=np.uint64) if isinstance(node, int) else resolve_path(profile, node)
    ex = expand(profile)
    return _keep_through(profile, ex, np.isin(ex.node_ids, ids), reroot)


def resolve_path(profile: Profile, path: Sequence[str]) -> np.ndarray:
    """Node ids (uint64) whose root-first frame-name path equals ``path`` (one join per level)."""
    if isinstance(path, str):
        raise TypeError("path must be a sequence of frame names, not a string")
    nodes = profile.nodes.select("node_id", "parent_id", "frame_id")
    if nodes.height:
        nodes = nodes.with_columns(pl.Series("name", frame_lookup(profile, nodes["frame_id"].to_numpy()), dtype=pl.Utf8))
    else:
        nodes = nodes.with_columns(pl.lit("", dtype=pl.Utf8).alias("name"))
    current = pl.DataFrame({"parent_id": [ROOT_ID]}, schema={"parent_id": pl.UInt64})
    for name in path:
        level = nodes.filter(pl.col("name") == name)
        current = level.join(current, on="parent_id", how="semi").select(pl.col("node_id").alias("parent_id"))
        if current.height == 0:
            break
    if not path:
        return np.zeros(0, dtype=np.uint64)
    return current["parent_id"].to_numpy().astype(np.uint64)


def _keep_through(profile: Profile, ex: Expanded, mask: np.ndarray, reroot: bool) -> Profile:
    """Keep stacks with a masked element; optionally cut each above its first one."""
    rows = any_per_stack(ex, mask)
    if rows.all() and not reroot:
        return profile
    first = first_per_stack(ex, mask)[rows]
    ex = subset(ex, rows)
    if not reroot:
        return rebuild(profile, ex)
    keep = position_in_stack(ex) >= first[stack_of_element(ex)]
    return rebuild(profile, ex, keep)
