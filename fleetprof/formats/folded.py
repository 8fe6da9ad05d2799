"""Folded ("collapsed") stacks, Brendan Gregg's format: one ``root;…;leaf COUNT`` per line.

Decoding contract (:func:`decode_folded`):

* Each non-blank line that is not a comment is a stack and a count, separated by
  the **last** run of whitespace (frame names may contain spaces). A comment starts with
  ``#`` and does not end in a count (so a root frame named ``#x`` still round-trips). Frames are separated by
  ``;``, root first; empty frames (``a;;b``) are dropped; a line whose stack is empty
  (py-spy writes `` 2`` for idle samples) counts as an empty stack (the root's self value).
* The count is a non-negative decimal integer that fits int64; anything else raises
  :class:`ProfileFormatError` naming the 1-based line number.
* py-spy ``--format raw`` frames ``name (file.py:12)`` (or ``name (file.py)`` with
  ``--nolineno``) become function ``name`` in file ``file.py``; the line number is kept only
  with ``keep_lines=True``. py-spy's root frames ``process 123:"cmd"`` and
  ``thread (0x7f…)`` / ``thread (123): MainThread`` are kept whole as frames. A ``;`` inside a
  py-spy location (a file name with a semicolon) does not split the frame.
* Invalid UTF-8 is replaced (U+FFFD); gzip input is detected by magic and inflated within
  ``limits.max_decompressed_bytes``.
* Limits: more than ``limits.max_samples`` stack lines, or a frame longer than
  ``limits.max_string_length`` bytes, raise; a stack deeper than ``limits.max_stack_depth``
  keeps its leaf-most ``max_stack_depth - 1`` frames under a :data:`TRUNCATED_FRAME` root
  and is counted in ``Profile.truncated_stacks``.
* With ``sample_rate`` (Hz, as Pyroscope's legacy ``/ingest`` passes it) counts become CPU
  nanoseconds: ``count * (10**9 // sample_rate)``, sample type ``cpu:nanoseconds`` and
  period ``10**9 // sample_rate``.

The decoder is vectorised (no Python loop per line or per stack element); only unique
frame strings are visited in Python. Plain files (ASCII, single spaces before the counts,
no comments) are cut into lines and counts with numpy over the byte positions of newlines
and spaces, the stacks handed to polars as zero-copy string views; anything else takes the
polars string-kernel path, which gives the same results. Frames are interned by an
in-process string hash grouped in a small table and then checked string by string. Inputs of at most
:data:`SMALL_LINES` lines and :data:`SMALL_CHARS` characters (agent pushes, fuzzing) take an
equivalent small-input path with bounded Python loops, because each polars call costs
~0.1 ms; a property test checks that both paths give identical profiles and errors.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from fleetprof.formats.errors import (
    DEFAULT_LIMITS,
    TRUNCATED_FRAME,
    Limits,
    ProfileFormatError,
    maybe_gunzip,
)
from fleetprof.formats.folded_scan import check_sample_count, scan_plain
from fleetprof.model.merge import empty_profile
from fleetprof.model.profile import Profile, Stacks, ValueType, build, expand, positions

FMT = "folded"
SAMPLES = ValueType("samples", "count")
CPU_NS = ValueType("cpu", "nanoseconds")
_INT64_MAX = (1 << 63) - 1

_PYSPY_ROOT = re.compile(r"^(?:process \d+:|thread \()")
_PYSPY_FRAME = re.compile(r"^(.*?) \(([^()]+)\)$", re.S)
_LOCATION_LINE = re.compile(r"^(.*):(\d{1,18})$", re.S)
# A py-spy location group containing ';' (a file name with a semicolon).
_SEMI_IN_LOCATION = r" \([^()]*;[^()]*\)"
_SEMI_IN_LOCATION_RE = re.compile(_SEMI_IN_LOCATION)

WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
"""Unicode ``White_Space`` (what polars' ``\\s`` and ``strip_chars`` use; Python's own
``str.isspace`` differs, so the small-input path names the set explicitly)."""
_COUNT = re.compile(f"[{WHITESPACE}]([^{WHITESPACE}]*)\\Z")
_HASH_COUNT = re.compile(f"[{WHITESPACE}][0-9]+\\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
SMALL_LINES = 256
SMALL_CHARS = 32 * 1024


def decode_folded(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    sample_type: ValueType = SAMPLES,
    sample_rate: int | None = None,
    keep_lines: bool = False,
    pyspy_frames: bool = True,
    vectorized: bool | None = None,
) -> Profile:
    """Decode folded stacks into a :class:`Profile` (see the module contract).

    ``vectorized`` forces the polars path (``True``) or the small-input path (``False``);
    by default inputs of at most :data:`SMALL_LINES` lines take the small-input path."""
    raw = maybe_gunzip(bytes(data), FMT, limits)
    parsed = _parse_bytes(raw, limits) if vectorized or (vectorized is None and len(raw) > SMALL_CHARS) else None
    if parsed is None:
        text = raw.decode("utf-8", "replace")
        small = is_small(text) if vectorized is None else not vectorized
        parsed = (_parse_small if small else _parse_vectorized)(text, limits)
    stack_col, counts, linenos = parsed
    return stacks_at_rate(
        stack_col, counts, linenos, FMT, sample_type=sample_type, sample_rate=sample_rate, limits=limits, keep_lines=keep_lines, pyspy_frames=pyspy_frames
    )


def stacks_at_rate(
    stack_col: pl.Series | list[str],
    counts: np.ndarray,
    linenos: np.ndarray,
    fmt: str,
    *,
    sample_type: ValueType,
    sample_rate: int | None,
    limits: Limits,
    keep_lines: bool,
    pyspy_frames: bool,
) -> Profile:
    """:func:`stacks_from_strings` of ``sample_type`` counts, or, with ``sample_rate`` (Hz),
    of CPU nanoseconds (see :func:`_counts_to_cpu_ns`)."""
    st = sample_type
    period_type = None
    period = 0
    if sample_rate is not None:
        counts, period = _counts_to_cpu_ns(counts, sample_rate, fmt)
        st, period_type = CPU_NS, CPU_NS
    return stacks_from_strings(
        stack_col,
        counts,
        linenos,
        sample_type=st,
        limits=limits,
        keep_lines=keep_lines,
        pyspy_frames=pyspy_frames,
        fmt=fmt,
        period_type=period_type,
        period=period,
    )


def _parse_vectorized(text: str, limits: Limits) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Stack strings, counts and 0-based line numbers of folded text (polars kernels)."""
    lines = _text_lines(text)
    lines = lines.with_columns(pl.col("l").str.strip_chars_end())
    comment = pl.col("l").str.starts_with("#") & ~pl.col("l").str.contains(r"\s[0-9]+$")
    lines = lines.filter((pl.col("l") != "") & ~comment)
    _check_sample_count(lines.height, limits, FMT)
    parsed = lines.select(
        "lineno",
        pl.col("l").str.extract(r"\s(\S*)$").alias("count_s"),
        pl.col("l"),
    ).with_columns(
        pl.col("count_s").str.contains(r"^[0-9]+$").fill_null(False).alias("ok"),
        pl.col("count_s").cast(pl.Int64, strict=False).alias("count"),
    )
    bad = parsed.filter(~pl.col("ok") | pl.col("count").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        _bad_count(row["count_s"], row["lineno"])
    stacks = parsed.select(
        "lineno",
        pl.col("l")
        .str.head(pl.col("l").str.len_chars() - pl.col("count_s").str.len_chars() - 1)
        .str.strip_chars()
        .alias("stack"),
        "count",
    )
    return stacks["stack"], stacks["count"].to_numpy().astype(np.int64), stacks["lineno"].to_numpy()


def _parse_bytes(raw: bytes, limits: Limits) -> tuple[pl.Series, np.ndarray, np.ndarray] | None:
    """:func:`_parse_vectorized` straight from the bytes of a plain file
    (:func:`~fleetprof.formats.folded_scan.scan_plain`: no string kernels). Returns ``None``
    (the caller takes the general path, which also produces every error) for anything
    else; where it answers, it answers the same (a property test compares the paths). The
    stacks come back as string views into ``raw`` (an Arrow ``string_view`` array handed
    to polars), not as copies."""
    lines = scan_plain(raw, limits, FMT)
    if lines is None:
        return None
    return _string_views(raw, lines.buf, lines.starts, lines.last - lines.starts), lines.counts, lines.linenos


def _string_views(raw: bytes, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pl.Series:
    """Polars strings ``raw[starts[i] : starts[i] + lengths[i]]`` (valid UTF-8) without
    copying: Arrow ``string_view`` headers (length; inline bytes up to 12, else a 4-byte
    prefix, buffer 0 and the offset) over ``raw``."""
    import pyarrow as pa

    n = len(starts)
    views = np.zeros((n, 16), dtype=np.uint8)
    words = views.view(np.int32)
    words[:, 0] = lengths
    short = np.flatnonzero(lengths <= 12)
    long = np.flatnonzero(lengths > 12)
    if len(long):  # a string longer than 12 bytes has 4 bytes from its start on
        prefix = np.ndarray((len(buf) - 3,), dtype="<u4", buffer=raw, strides=(1,))  # unaligned reads
        words[long, 1] = prefix[starts[long]].view(np.int32)
        words[long, 3] = starts[long]
    if len(short):
        k = np.arange(12, dtype=np.int64)
        inline = buf[np.minimum(starts[short, None] + k[None, :], len(buf) - 1)]
        views[short, 4:16] = np.where(k[None, :] < lengths[short, None], inline, 0)
    arr = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views), pa.py_buffer(raw)])
    return pl.Series("stack", pl.from_arrow(arr), dtype=pl.Utf8)


def _bad_count(count_s: str | None, lineno: int) -> None:
    what = "missing count" if count_s is None else f"bad count {count_s[:40]!r}"
    raise ProfileFormatError(FMT, what, f"line {lineno + 1}")


def _parse_small(text: str, limits: Limits) -> tuple[list[str], np.ndarray, np.ndarray]:
    """:func:`_parse_vectorized` for small inputs (a bounded Python loop per line; same
    results, checked by a property test)."""
    rows: list[tuple[int, str]] = []
    for i, raw in enumerate(text.split("\n")):
        line = raw.rstrip(WHITESPACE)
        if line and not (line.startswith("#") and not _HASH_COUNT.search(line)):
            rows.append((i, line))
    _check_sample_count(len(rows), limits, FMT)
    stacks: list[str] = []
    counts: list[int] = []
    for i, line in rows:
        m = _COUNT.search(line)
        count_s = m.group(1) if m else None
        if count_s is None or not _DIGITS.match(count_s) or int(count_s) > _INT64_MAX:
            _bad_count(count_s, i)
        stacks.append(line[: len(line) - len(count_s) - 1].strip(WHITESPACE))
        counts.append(int(count_s))
    return stacks, np.array(counts, dtype=np.int64), np.array([i for i, _ in rows], dtype=np.int64)


def is_small(text: str) -> bool:
    """Whether ``text`` takes the small-input path (per-call overhead beats vectorising)."""
    return len(text) <= SMALL_CHARS and text.count("\n") < SMALL_LINES


def _text_lines(text: str) -> pl.DataFrame:
    """``lineno`` (0-based) and ``l`` (the line without its ``\\n``) for every line."""
    s = pl.Series("l", [text], dtype=pl.Utf8).str.split("\n").explode()
    return pl.DataFrame({"l": s}).with_row_index("lineno")


_check_sample_count = check_sample_count


def _counts_to_cpu_ns(counts: np.ndarray, sample_rate: int, fmt: str = FMT) -> tuple[np.ndarray, int]:
    """Counts at ``sample_rate`` Hz as nanoseconds; raises on a bad rate or overflow."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 0 < sample_rate <= 10**9:
        raise ProfileFormatError(fmt, f"bad sampleRate {sample_rate!r}", "sampleRate")
    period = 10**9 // sample_rate
    if len(counts) and int(counts.max()) > _INT64_MAX // period:
        raise ProfileFormatError(fmt, "count overflows int64 nanoseconds", "count")
    return counts * np.int64(period), period


def stacks_from_strings(
    stack: pl.Series | list[str],
    counts: np.ndarray,
    linenos: np.ndarray,
    *,
    sample_type: ValueType,
    limits: Limits,
    keep_lines: bool,
    pyspy_frames: bool,
    fmt: str,
    period_type: ValueType | None = None,
    period: int = 0,
) -> Profile:
    """Profile from ``;``-joined stack strings (root first) with one count each.

    Shared by the folded and ``lines`` decoders; ``linenos`` (0-based) name lines in errors.
    A Python list takes the small-input path, a polars Series the vectorised one.
    """
    meta: dict[str, object] = {
        "period_type": period_type,
        "period": period,
        "default_sample_type": sample_type.type,
    }
    if len(counts) == 0:
        return empty_profile([sample_type], **meta)
    if float(counts.astype(np.float64).sum()) > _INT64_MAX:
        raise ProfileFormatError(fmt, "total of counts overflows int64", "count")
    if isinstance(stack, list):
        sidx, codes, uniq = _split_intern_small(stack)
        too_long = np.array([len(u.encode("utf-8")) > limits.max_string_length for u in uniq], dtype=bool)
    else:
        sidx, tokens = _split_frames(stack)
        codes, useries = _intern(tokens)
        too_long = (useries.str.len_bytes() > limits.max_string_length).to_numpy()
        uniq = useries.to_list()
    if too_long.any():
        row = int(sidx[np.argmax(too_long[codes])])  # the first frame that is too long
        raise ProfileFormatError(
            fmt, f"frame longer than the {limits.max_string_length}-byte limit", f"line {int(linenos[row]) + 1}"
        )
    names, files, lines = _frame_table(uniq, keep_lines=keep_lines, pyspy=pyspy_frames)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(sidx, minlength=len(counts)), out=offsets[1:])
    offsets, frames, truncated = truncate_depth(offsets, codes, limits.max_stack_depth, marker=len(names))
    if truncated:
        names, files, lines = [*names, TRUNCATED_FRAME], [*files, ""], [*lines, 0]
    stacks = Stacks(
        names=names,
        files=files,
        lines=lines if keep_lines else None,
        offsets=offsets,
        frames=frames,
        values=counts.reshape(-1, 1),
    )
    return build(stacks, [sample_type], truncated_stacks=truncated, **meta)


def _split_frames(stack: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Stack index and frame string of every non-empty frame, in stack order."""
    special = stack.str.contains("(", literal=True)
    if special.any():
        special = stack.str.contains(_SEMI_IN_LOCATION)
    if special.any():
        df = pl.DataFrame({"stack": stack}).with_row_index("s")
        rare = df.filter(special)
        parts = [_split_respecting_locations(s) for s in rare["stack"].to_list()]
        rare_ex = pl.DataFrame(
            {"s": rare["s"], "f": pl.Series(parts, dtype=pl.List(pl.Utf8))}
        ).explode("f")
        common = df.filter(~special).select("s", pl.col("stack").str.split(";").alias("f")).explode("f")
        ex = pl.concat([common, rare_ex]).sort("s", maintain_order=True)
        ex = ex.filter(pl.col("f").is_not_null() & (pl.col("f") != ""))
        return ex["s"].to_numpy().astype(np.int64), ex["f"]
    parts = stack.str.split(";")
    per_stack = parts.list.len().to_numpy().astype(np.int64)
    tokens = parts.explode()
    sidx = np.repeat(np.arange(len(stack), dtype=np.int64), per_stack)
    keep = (tokens.str.len_bytes() > 0).fill_null(False).to_numpy()
    if not keep.all():
        sidx, tokens = sidx[keep], tokens.filter(pl.Series(keep))
    return sidx, tokens


def _split_intern_small(stack: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Small-input :func:`_split_frames` + :func:`_intern` (bounded Python loops)."""
    index: dict[str, int] = {}
    sidx: list[int] = []
    codes: list[int] = []
    for i, s in enumerate(stack):
        parts = _split_respecting_locations(s) if _SEMI_IN_LOCATION_RE.search(s) else s.split(";")
        for f in parts:
            if f:
                sidx.append(i)
                codes.append(index.setdefault(f, len(index)))
    return np.array(sidx, dtype=np.int64), np.array(codes, dtype=np.int64), list(index)


def _split_respecting_locations(stack: str) -> list[str]:
    """Split at ``;`` except inside a `` (…)`` location group (rare lines only)."""
    out: list[str] = []
    start = 0
    depth = 0
    for i, ch in enumerate(stack):
        if ch == "(" and i > 0 and stack[i - 1] == " " and depth == 0:
            close = stack.find(")", i)
            depth = 1 if close != -1 and "(" not in stack[i + 1 : close] else 0
        elif ch == ")" and depth:
            depth = 0
        elif ch == ";" and not depth:
            out.append(stack[start:i])
            start = i + 1
    out.append(stack[start:])
    return out


def _intern(tokens: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Dense codes of ``tokens`` (in no particular order) and the unique strings.

    Groups polars' in-process string hash with a small open-addressing table and checks
    that every token equals the representative of its code (falling back to an exact
    string join if a hash collision merged two strings)."""
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.int64), pl.Series("f", [], dtype=pl.Utf8)
    codes, first = _dense_codes(tokens.hash().to_numpy())
    uniq = tokens.gather(pl.Series(first))
    if bool((uniq.gather(pl.Series(codes)) == tokens).all()):
        return codes, uniq.alias("f")
    df = pl.DataFrame({"f": tokens})
    table = df.unique("f", keep="first", maintain_order=True).with_row_index("code")
    exact = df.join(table, on="f", how="left", maintain_order="left")["code"]
    return exact.to_numpy().astype(np.int64), table["f"]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


_CODE_CHUNK = 1 << 16
"""Rows per round of :func:`_dense_codes`: small enough for the temporaries to stay in cache."""


def _dense_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense code of every uint64 key and the row of one occurrence of each code.

    A vectorised open-addressing table (linear probing, load <= 1/2) filled chunk by chunk:
    rows find their home slot; rows meeting an empty slot claim it (among rivals the last
    write wins); rows whose slot holds another key probe on. The table is sized from the
    distinct keys of a sample (restarting larger if it fills), so with few distinct keys
    (frame names) it stays in cache."""
    n = len(keys)
    sample = keys[: 1 << 16]
    distinct = len(np.unique(sample))
    bits = max(10, (4 * (distinct if distinct * 2 < len(sample) else n)).bit_length())
    while True:
        size = 1 << bits
        mask = size - 1
        owner = np.full(size, -1, dtype=np.int64)
        slots = np.empty(n, dtype=np.int64)
        used = 0
        full = False
        for lo in range(0, n, _CODE_CHUNK):
            k = keys[lo : lo + _CODE_CHUNK]
            with np.errstate(over="ignore"):
                slot = ((k * _GOLDEN) >> np.uint64(64 - bits)).view(np.int64)
            todo = np.arange(len(k), dtype=np.int64)
            while len(todo):
                s = slot[todo]
                free = owner[s] < 0
                if free.any():
                    claim = s[free]
                    owner[claim] = todo[free] + lo
                    used += len(np.unique(claim))
                    if used * 2 > size:
                        full = True
                        break
                todo = todo[keys[owner[s]] != k[todo]]
                slot[todo] = (slot[todo] + 1) & mask
            if full:
                break
            slots[lo : lo + len(k)] = slot
        if not full:
            taken = owner >= 0
            code_of_slot = np.cumsum(taken) - 1
            return code_of_slot[slots], owner[taken]
        bits += 2


def _frame_table(frames: list[str], *, keep_lines: bool, pyspy: bool) -> tuple[list[str], list[str], list[int]]:
    """Names, files and lines of unique frame strings (one Python step per unique frame)."""
    names: list[str] = []
    files: list[str] = []
    lines: list[int] = []
    for f in frames:
        name, file, line = parse_frame(f) if pyspy else (f, "", 0)
        names.append(name)
        files.append(file)
        lines.append(line if keep_lines else 0)
    return names, files, lines


def parse_frame(frame: str) -> tuple[str, str, int]:
    """``(name, file, line)`` of one folded frame, understanding py-spy's raw notation."""
    if _PYSPY_ROOT.match(frame):
        return frame, "", 0
    m = _PYSPY_FRAME.match(frame)
    if not m or not m.group(1):
        return frame, "", 0
    name, loc = m.group(1), m.group(2)
    ml = _LOCATION_LINE.match(loc)
    if ml and ml.group(1):
        return name, ml.group(1), int(ml.group(2))
    return name, loc, 0


def truncate_depth(
    offsets: np.ndarray, frames: np.ndarray, max_depth: int, *, marker: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """CSR stacks with every stack deeper than ``max_depth`` cut to its leaf-most
    ``max_depth - 1`` frames under frame index ``marker``; returns the count cut."""
    lengths = np.diff(offsets)
    deep = lengths > max_depth
    n_deep = int(deep.sum())
    if n_deep == 0:
        return offsets, frames, 0
    keep_tail = max(max_depth - 1, 0)
    new_len = np.where(deep, keep_tail + 1, lengths)
    new_off = np.zeros_like(offsets)
    np.cumsum(new_len, out=new_off[1:])
    sid = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(frames)) - offsets[:-1][sid]
    shift = np.where(deep, lengths - keep_tail, 0)[sid]
    keep = pos >= shift
    out = np.empty(int(new_off[-1]), dtype=np.int64)
    out[new_off[:-1][deep]] = marker
    dest = new_off[:-1][sid] + pos - shift + deep[sid]
    out[dest[keep]] = frames[keep]
    return new_off, out, n_deep


def encode_folded(profile: Profile, type_index: int | None = None, *, with_files: bool = False) -> bytes:
    """Folded text of one value column: one line per distinct stack (frames joined by
    ``;``, root first), sorted, stacks with a zero value omitted, newline-terminated.

    Frames are plain ``name`` (or py-spy style ``name (file:line)`` with ``with_files``);
    ``;`` and line breaks inside names are replaced by ``:`` and spaces so the output
    always parses back. Empty stacks (root self value) are written as `` COUNT``."""
    ti = profile.type_index() if type_index is None else type_index
    col = profile.value_cols[ti]
    ex = expand(profile)
    values = ex.samples[col].to_numpy().astype(np.int64)
    lengths = np.diff(ex.offsets)
    sid = np.repeat(np.arange(len(lengths)), lengths)
    labels = _frame_labels(profile, ex.frame_ids, with_files)
    frames = pl.DataFrame({"s": sid, "f": labels}, schema={"s": pl.Int64, "f": pl.Utf8})
    joined = frames.group_by("s", maintain_order=True).agg(pl.col("f").str.join(";"))
    per_stack = pl.DataFrame({"s": np.arange(len(lengths)), "v": values}).join(joined, on="s", how="left")
    out = (
        per_stack.with_columns(pl.col("f").fill_null(""))
        .group_by("f")
        .agg(pl.col("v").sum())
        .filter(pl.col("v") != 0)
        .sort("f")
    )
    if out.height == 0:
        return b""
    text = out.select(pl.concat_str([pl.col("f"), pl.lit(" "), pl.col("v").cast(pl.Utf8)]).str.join("\n"))
    return (text.item() + "\n").encode("utf-8")


def _frame_labels(profile: Profile, fids: np.ndarray, with_files: bool) -> pl.Series:
    """Sanitised folded label of every frame id in ``fids`` (a label per frame-table row,
    gathered through a hash join)."""
    fr = profile.frames
    name = pl.col("name").str.replace_all(";", ":", literal=True).str.replace_all(r"[\r\n]", " ")
    if with_files:
        file = pl.col("file").str.replace_all(r"[;()\r\n]", "_")
        loc = pl.when(pl.col("line") > 0).then(pl.concat_str([file, pl.lit(":"), pl.col("line").cast(pl.Utf8)])).otherwise(file)
        name = pl.when(pl.col("file") != "").then(pl.concat_str([name, pl.lit(" ("), loc, pl.lit(")")])).otherwise(name)
    labels = fr.select(name.alias("f"))["f"]
    if len(fids) == 0:
        return pl.Series("f", [], dtype=pl.Utf8)
    pos = positions(fr["frame_id"].to_numpy(), fids)
    if np.any(pos < 0):
        raise ValueError("profile stacks reference frames missing from the frame table")
    return labels.gather(pos)


__all__ = ["decode_folded", "encode_folded", "parse_frame", "stacks_from_strings", "truncate_depth"]
