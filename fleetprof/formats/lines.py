"""Pyroscope's ``lines`` ingest format: every line is one stack sample ``root;…;leaf``.

Decoding contract (:func:`decode_lines`): each non-blank line (trailing whitespace and
``\\r`` stripped) is one stack counted once; identical lines add up. There is no count
column, so spaces belong to the frames. Frames are split on ``;`` exactly as in
:mod:`fleetprof.formats.folded` (py-spy ``name (file:line)`` frames understood, empty
frames dropped), with the same limits (``max_samples`` counts lines) and UTF-8
replacement. With ``sample_rate`` each sample is worth ``10**9 // sample_rate`` CPU
nanoseconds (Pyroscope's ``/ingest?sampleRate=``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fleetprof.formats.errors import DEFAULT_LIMITS, Limits, maybe_gunzip
from fleetprof.formats.folded import (
    SAMPLES,
    WHITESPACE,
    _check_sample_count,
    _text_lines,
    is_small,
    stacks_at_rate,
)
from fleetprof.model.profile import Profile, ValueType

FMT = "lines"


def decode_lines(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    sample_type: ValueType = SAMPLES,
    sample_rate: int | None = None,
    keep_lines: bool = False,
    pyspy_frames: bool = True,
    vectorized: bool | None = None,
) -> Profile:
    """Decode the ``lines`` format into a :class:`Profile` (see the module contract);
    ``vectorized`` as in :func:`~fleetprof.formats.folded.decode_folded`."""
    text = maybe_gunzip(bytes(data), FMT, limits).decode("utf-8", "replace")
    small = is_small(text) if vectorized is None else not vectorized
    stack_col, counts, linenos = (_group_small if small else _group_vectorized)(text, limits)
    return stacks_at_rate(
        stack_col, counts, linenos, FMT, sample_type=sample_type, sample_rate=sample_rate, limits=limits, keep_lines=keep_lines, pyspy_frames=pyspy_frames
    )


def _group_vectorized(text: str, limits: Limits) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Distinct stack lines (first-appearance order), their counts and first line numbers."""
    lines = _text_lines(text).with_columns(pl.col("l").str.strip_chars_end())
    lines = lines.filter(pl.col("l") != "")
    _check_sample_count(lines.height, limits, FMT)
    grouped = (
        lines.group_by("l", maintain_order=True)
        .agg(pl.col("lineno").first(), pl.len().alias("count"))
        .with_columns(pl.col("l").str.strip_chars_start())
    )
    return grouped["l"], grouped["count"].to_numpy().astype(np.int64), grouped["lineno"].to_numpy()


def _group_small(text: str, limits: Limits) -> tuple[list[str], np.ndarray, np.ndarray]:
    """:func:`_group_vectorized` for small inputs (bounded Python loop per line)."""
    first: dict[str, int] = {}
    count: dict[str, int] = {}
    n = 0
    for i, raw in enumerate(text.split("\n")):
        line = raw.rstrip(WHITESPACE)
        if line:
            n += 1
            first.setdefault(line, i)
            count[line] = count.get(line, 0) + 1
    _check_sample_count(n, limits, FMT)
    stacks = [line.lstrip(WHITESPACE) for line in first]
    return stacks, np.array(list(count.values()), dtype=np.int64), np.array(list(first.values()), dtype=np.int64)


__all__ = ["decode_lines"]
