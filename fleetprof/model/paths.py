"""Vectorised helpers over :class:`~fleetprof.model.profile.Expanded` CSR paths.

Shared by the model operations (filter, top, aggregate, …). Every helper works on whole
arrays: no Python loop per sample or per stack element.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import polars as pl

from fleetprof.model.profile import Expanded, Profile


def stack_of_element(ex: Expanded) -> np.ndarray:
    """Stack (sample-row) index of every element of ``ex.frame_ids``."""
    lengths = np.diff(ex.offsets)
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def position_in_stack(ex: Expanded) -> np.ndarray:
    """0-based position (depth - 1) of every element within its stack."""
    lengths = np.diff(ex.offsets)
    return np.arange(int(ex.offsets[-1]), dtype=np.int64) - np.repeat(ex.offsets[:-1], lengths)


def any_per_stack(ex: Expanded, mask: np.ndarray) -> np.ndarray:
    """Per stack: whether any of its elements is set in ``mask``."""
    n = len(ex.offsets) - 1
    hits = np.bincount(stack_of_element(ex)[mask], minlength=n) if n else np.zeros(0, np.int64)
    return hits > 0


def first_per_stack(ex: Expanded, mask: np.ndarray) -> np.ndarray:
    """Per stack: position of the root-most element set in ``mask`` (-1 when none)."""
    n = len(ex.offsets) - 1
    out = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    if len(idx):
        stacks = stack_of_element(ex)[idx]
        uniq, first = np.unique(stacks, return_index=True)
        out[uniq] = idx[first] - ex.offsets[uniq]
    return out


def subset(ex: Expanded, rows: np.ndarray) -> Expanded:
    """The stacks of ``ex`` selected by the boolean ``rows`` mask, as a new ``Expanded``."""
    lengths = np.diff(ex.offsets)
    elem = np.repeat(rows, lengths)
    offsets = np.zeros(int(rows.sum()) + 1, dtype=np.int64)
    np.cumsum(lengths[rows], out=offsets[1:])
    samples = ex.samples.filter(pl.Series(rows, dtype=pl.Boolean))
    return replace(ex, samples=samples, offsets=offsets, frame_ids=ex.frame_ids[elem], node_ids=ex.node_ids[elem])


def matching_frames(profile: Profile, pattern: str | re.Pattern[str], *, match_file: bool = False) -> np.ndarray:
    """Frame ids (uint64) whose function name (or, with ``match_file``, file) matches the
    Python regex ``pattern`` (``re.search``). One regex call per unique frame."""
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    names = profile.frames["name"].to_list()
    files = profile.frames["file"].to_list()
    hit = np.fromiter(
        (bool(rx.search(n)) or (match_file and bool(rx.search(f))) for n, f in zip(names, files, strict=True)),
        dtype=bool,
        count=len(names),
    )
    return profile.frames["frame_id"].to_numpy()[hit]


def values_of(ex: Expanded, type_index: int) -> np.ndarray:
    """Sample values (int64) of column ``v{type_index}``, one per stack."""
    return ex.samples[f"v{type_index}"].to_numpy().astype(np.int64)


def leaf_frames(ex: Expanded) -> tuple[np.ndarray, np.ndarray]:
    """``(stack indices, leaf frame ids)`` of the non-empty stacks."""
    lengths = np.diff(ex.offsets)
    rows = np.flatnonzero(lengths > 0)
    return rows, ex.frame_ids[ex.offsets[1:][rows] - 1]
