"""JFR recordings (what the Pyroscope Java agent sends to ``/ingest?format=jfr``) → profiles.

Contract (:func:`decode_jfr_profiles`), following Pyroscope's JFR conversion:

* The input is a JFR recording (:mod:`.jfr_reader`), gzipped or not (gzip detected by its
  magic bytes, decompression bounded by ``limits.max_decompressed_bytes``).
* Events become one profile per kind, each named as Pyroscope names it (``__name__`` and
  sample types):

  =================================== =========== ============================================ ================
  event                               name        sample types (values)                        period type
  =================================== =========== ============================================ ================
  ``jdk.ExecutionSample``             process_cpu ``cpu:nanoseconds`` (period per sample)      ``cpu:nanoseconds``
  ``profiler.WallClockSample``        wall        ``wall:nanoseconds`` (``samples`` × period)  ``wall:nanoseconds``
  ``jdk.ObjectAllocationInNewTLAB``   memory      ``alloc_in_new_tlab_objects:count`` (1),     ``space:bytes``
                                                  ``alloc_in_new_tlab_bytes:bytes`` (tlabSize)
  ``jdk.ObjectAllocationOutsideTLAB`` memory      ``alloc_outside_tlab_objects:count`` (1),    ``space:bytes``
                                                  ``alloc_outside_tlab_bytes:bytes`` (size)
  ``jdk.ObjectAllocationSample``      memory      ``alloc_sample_objects``/``_bytes`` (weight) ``space:bytes``
  ``jdk.JavaMonitorEnter``            mutex       ``contentions:count`` (1),                   ``mutex:count``
                                                  ``delay:nanoseconds`` (duration)
  ``jdk.ThreadPark``                  block       ``contentions:count``, ``delay:nanoseconds`` ``block:count``
  ``profiler.LiveObject``             memory      ``live:count`` (1)                           ``objects:count``
  ``profiler.Malloc``                 memory      ``malloc_objects:count``, ``malloc_bytes``   none
  =================================== =========== ============================================ ================

  The period is ``10**9 // sample_rate`` nanoseconds (the query's ``sampleRate``). An
  execution sample counts as CPU unless its thread state is unknown or
  ``STATE_SLEEPING``; when async-profiler's ``event`` setting (a ``jdk.ActiveSetting``
  event seen earlier in the recording) is ``wall``, it also counts as wall time, and a
  wall-clock sample whose thread is ``STATE_RUNNABLE`` also counts as CPU. Durations are
  converted from ticks to nanoseconds with the chunk's ticks per second.
* Frames are ``<class>.<method>`` with JVM internal class names (``java/lang/Thread.run``),
  root first; a frame whose method or class is missing from the pools is left out, an
  event whose stack trace is missing is skipped. Names of generated classes are merged as
  Pyroscope merges them (``GeneratedMethodAccessor12`` → ``GeneratedMethodAccessor_``,
  ``Foo$$Lambda$12/0x…`` → ``Foo$$Lambda_``, Spring CGLIB enhancers, temporary native
  libraries of zstd-jni, Amazon Corretto Crypto Provider and async-profiler). Line numbers
  are kept only with ``keep_lines``.
* With a labels snapshot (the agent's ``labels`` part, :mod:`.proto.jfr_labels_pb2`), an
  event's ``contextId`` gives its sample labels; a non-zero ``spanId`` adds
  ``profile_id`` (16 hex digits) and ``spanName`` adds ``span_name``.
* More events than ``limits.max_samples`` is an error; stacks deeper than
  ``limits.max_stack_depth`` keep their leaf-most frames under a :data:`TRUNCATED_FRAME`
  root and are counted in ``Profile.truncated_stacks``.

:func:`decode_jfr` merges every kind into one profile (for the CLI), one value column per
sample type; the thread-park columns are named ``block_contentions`` and ``block_delay``
there to stay apart from the monitor columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from fleetprof.formats.errors import DEFAULT_LIMITS, TRUNCATED_FRAME, Limits, maybe_gunzip
from fleetprof.formats.folded import truncate_depth
from fleetprof.formats.jfr_reader import FMT, MAGIC, Chunk, JfrReader, fail, signed64
from fleetprof.model.profile import Profile, Stacks, ValueType, build

DEFAULT_SAMPLE_RATE = 100
"""Samples per second assumed without a ``sampleRate`` (async-profiler's 10 ms interval)."""


@dataclass(frozen=True)
class JfrKind:
    """One profile kind: its ``__name__``, sample types and period type."""

    name: str
    sample_types: tuple[ValueType, ...]
    period_type: ValueType | None


def _vt(spec: str) -> ValueType:
    t, u = spec.split(":")
    return ValueType(t, u)


KINDS: dict[str, JfrKind] = {
    "cpu": JfrKind("process_cpu", (_vt("cpu:nanoseconds"),), _vt("cpu:nanoseconds")),
    "wall": JfrKind("wall", (_vt("wall:nanoseconds"),), _vt("wall:nanoseconds")),
    "alloc_in_new_tlab": JfrKind("memory", (_vt("alloc_in_new_tlab_objects:count"), _vt("alloc_in_new_tlab_bytes:bytes")), _vt("space:bytes")),
    "alloc_outside_tlab": JfrKind("memory", (_vt("alloc_outside_tlab_objects:count"), _vt("alloc_outside_tlab_bytes:bytes")), _vt("space:bytes")),
    "alloc_sample": JfrKind("memory", (_vt("alloc_sample_objects:count"), _vt("alloc_sample_bytes:bytes")), _vt("space:bytes")),
    "lock": JfrKind("mutex", (_vt("contentions:count"), _vt("delay:nanoseconds")), _vt("mutex:count")),
    "park": JfrKind("block", (_vt("contentions:count"), _vt("delay:nanoseconds")), _vt("block:count")),
    "live": JfrKind("memory", (_vt("live:count"),), _vt("objects:count")),
    "malloc": JfrKind("memory", (_vt("malloc_objects:count"), _vt("malloc_bytes:bytes")), None),
}


@dataclass(frozen=True)
class JfrProfile:
    """The profile of one kind; ``name`` is its ``__name__`` (``process_cpu`` …)."""

    kind: str
    name: str
    profile: Profile


@dataclass(frozen=True)
class JfrRecording:
    """Every non-empty kind's profile, in :data:`KINDS` order, and async-profiler's
    ``event`` setting (``cpu``, ``itimer``, ``wall`` …; ``""`` if none was recorded)."""

    profiles: list[JfrProfile]
    event: str


# ------------------------------------------------------------------------- frame names

_GENERATED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(jdk/internal/reflect/GeneratedMethodAccessor)[0-9]+\Z"), r"\1_"),
    (re.compile(r"^(.+\$\$Lambda)(?:\$?[0-9]*[./](?:0x)?[0-9a-f]+|[0-9]+)\Z"), r"\1_"),
    (re.compile(r"^(?:\.?/tmp/)?libzstd-jni-[0-9]+\.[0-9]+\.[0-9]+-[0-9]+\.so(?: \(deleted\))?\Z"), "libzstd-jni-_.so"),
    (
        re.compile(
            r"^(?:\.?/tmp/)?(?:lib)?amazonCorrettoCryptoProvider(?:NativeLibraries\.)?[0-9a-f]{16}"
            r"(?:/libcrypto|/libamazonCorrettoCryptoProvider)?\.so(?: \(deleted\))?\Z"
        ),
        "libamazonCorrettoCryptoProvider_.so",
    ),
    (
        re.compile(
            r"^(?:\.?/tmp/)?libasyncProfiler-(?:linux-arm64|linux-musl-x64|linux-x64|macos)-"
            r"17b9a1d8156277a98ccc871afa9a8f69215f92\.so(?: \(deleted\))?\Z"
        ),
        "libasyncProfiler-_.so",
    ),
    (re.compile(r"^(.+\$\$EnhancerBySpringCGLIB\$\$).*\Z"), r"\1_"),
]


def merge_generated(symbol: str) -> str:
    """A symbol with the per-run part of a JVM-generated name replaced by ``_``."""
    for rx, repl in _GENERATED:
        symbol = rx.sub(repl, symbol)
    return symbol


# ------------------------------------------------------------------------- labels


class _Labels:
    """Sample label sets from the agent's labels snapshot (interned; set 0 is empty)."""

    def __init__(self, raw: bytes | None, limits: Limits) -> None:
        self.contexts: dict[int, list[tuple[int, int]]] = {}
        self.strings: dict[int, str] = {}
        if raw:
            self._parse(maybe_gunzip(raw, FMT, limits))
        self.sets: list[tuple[tuple[str, str], ...]] = [()]
        self._index: dict[tuple[tuple[str, str], ...], int] = {(): 0}
        self._cache: dict[tuple[int, int, int], int] = {}

    def _parse(self, raw: bytes) -> None:
        from fleetprof.formats.proto import jfr_labels_pb2

        snap = jfr_labels_pb2.LabelsSnapshot()
        try:
            snap.ParseFromString(raw)
        except (DecodeError, RecursionError, ValueError) as e:
            fail(f"the labels part is not a valid LabelsSnapshot ({e})", "labels")
        self.strings = {k: v.decode("utf-8", "replace") for k, v in snap.strings.items()}
        self.contexts = {k: sorted(c.labels.items()) for k, c in snap.contexts.items()}

    def of(self, context_id: int, span_id: int, span_name: int) -> int:
        key = (context_id, span_id, span_name)
        got = self._cache.get(key)
        if got is not None:
            return got
        pairs = {}
        for k, v in self.contexts.get(signed64(context_id), ()) if context_id else ():
            name, value = self.strings.get(k, ""), self.strings.get(v, "")
            if name and value:
                pairs[name] = value
        if span_id:
            pairs["profile_id"] = f"{span_id:016x}"
        if span_name and self.strings.get(signed64(span_name)):
            pairs["span_name"] = self.strings[signed64(span_name)]
        labels = tuple(sorted(pairs.items()))
        idx = self._index.get(labels)
        if idx is None:
            idx = self._index[labels] = len(self.sets)
            self.sets.append(labels)
        self._cache[key] = idx
        return idx


# ------------------------------------------------------------------------- events


class _Fields:
    """Positions of the named fields of one event type (``None`` where absent)."""

    def __init__(self, chunk: Chunk, type_name: str, names: Iterable[str]) -> None:
        cls = chunk.by_name.get(type_name)
        index = cls.index if cls is not None else {}
        self.at = {n: index.get(n) for n in names}

    def get(self, values: list[Any], name: str, default: Any = 0) -> Any:
        i = self.at.get(name)
        return values[i] if i is not None else default


_MISSING = object()
_EVENT_FIELDS = ("stackTrace", "state", "contextId", "spanId", "spanName", "samples", "tlabSize", "allocationSize", "weight", "duration", "size", "name", "value")
EVENT_TYPES = (
    "jdk.ExecutionSample", "profiler.WallClockSample", "jdk.ObjectAllocationInNewTLAB",
    "jdk.ObjectAllocationOutsideTLAB", "jdk.ObjectAllocationSample", "jdk.JavaMonitorEnter",
    "jdk.ThreadPark", "profiler.LiveObject", "profiler.Malloc", "jdk.ActiveSetting",
)


class _Collector:
    """Sums event values per (kind, stack, label set) across the chunks of a recording."""

    def __init__(self, limits: Limits, keep_lines: bool, labels: _Labels, sample_rate: int) -> None:
        self.limits = limits
        self.keep_lines = keep_lines
        self.labels = labels
        self.period = 10**9 // sample_rate if sample_rate > 0 else 0
        self.names: list[str] = []
        self.lines: list[int] = []
        self._frames: dict[tuple[str, int], int] = {}
        self.acc: dict[str, dict[tuple[tuple[int, ...], int], list[int]]] = {k: {} for k in KINDS}
        self.event = ""
        self.count = 0
        self.start_nanos = 0
        self.end_nanos = 0
        self._handlers: dict[str, Callable[[list[Any]], None]] = {
            "jdk.ExecutionSample": self._execution,
            "profiler.WallClockSample": self._wall,
            "jdk.ObjectAllocationInNewTLAB": lambda v: self._pair("alloc_in_new_tlab", v, "tlabSize", True),
            "jdk.ObjectAllocationOutsideTLAB": lambda v: self._pair("alloc_outside_tlab", v, "allocationSize", True),
            "jdk.ObjectAllocationSample": lambda v: self._pair("alloc_sample", v, "weight", False),
            "jdk.JavaMonitorEnter": lambda v: self._pair("lock", v, "duration", True, ticks=True),
            "jdk.ThreadPark": lambda v: self._pair("park", v, "duration", False, ticks=True),
            "profiler.LiveObject": self._live,
            "profiler.Malloc": lambda v: self._pair("malloc", v, "size", False),
            "jdk.ActiveSetting": self._setting,
        }

    # ---- per chunk

    def read(self, chunk: Chunk) -> None:
        h = chunk.header
        self.start_nanos = h.start_nanos if not self.start_nanos else min(self.start_nanos, h.start_nanos)
        self.end_nanos = max(self.end_nanos, h.start_nanos + h.duration_nanos)
        self._chunk = chunk
        self._tps = h.ticks_per_second
        self._stacks: dict[int, tuple[int, ...] | None] = {}
        self._methods: dict[tuple[int, int], int] = {}
        self._symbols: dict[int, str] = {}
        pools = chunk.pools
        self._pool_stack = pools.get("jdk.types.StackTrace", {})
        self._pool_method = pools.get("jdk.types.Method", {})
        self._pool_class = pools.get("java.lang.Class", {})
        self._pool_symbol = pools.get("jdk.types.Symbol", {})
        self._states = {k: chunk.text(_Fields(chunk, "jdk.types.ThreadState", ["name"]).get(v, "name", None)) for k, v in pools.get("jdk.types.ThreadState", {}).items()}
        self._f_trace = _Fields(chunk, "jdk.types.StackTrace", ["frames"])
        self._f_frame = _Fields(chunk, "jdk.types.StackFrame", ["method", "lineNumber"])
        self._f_method = _Fields(chunk, "jdk.types.Method", ["type", "name"])
        self._f_class = _Fields(chunk, "java.lang.Class", ["name"])
        self._f_symbol = _Fields(chunk, "jdk.types.Symbol", ["string"])
        fields = {n: _Fields(chunk, n, _EVENT_FIELDS) for n in EVENT_TYPES}
        for name, values in chunk.events(set(EVENT_TYPES)):
            self._f = fields[name]
            self.count += 1
            if self.count > self.limits.max_samples:
                fail(f"more than {self.limits.max_samples} events (the sample limit)")
            self._handlers[name](values)

    # ---- stacks and frames

    def _stack(self, ref: Any) -> tuple[int, ...] | None:
        if not isinstance(ref, int):
            return None
        got = self._stacks.get(ref, _MISSING)
        if got is not _MISSING:
            return got  # type: ignore[return-value]
        trace = self._pool_stack.get(ref)
        out: tuple[int, ...] | None = None
        if trace is not None:
            frames = self._f_trace.get(trace, "frames", [])
            idx = [self._frame(f) for f in reversed(frames if isinstance(frames, list) else [])]
            out = tuple(i for i in idx if i >= 0)
        self._stacks[ref] = out
        return out

    def _frame(self, frame: Any) -> int:
        if not isinstance(frame, list):
            return -1
        method = self._f_frame.get(frame, "method", None)
        line = self._f_frame.get(frame, "lineNumber", 0) if self.keep_lines else 0
        line = signed64(line) if isinstance(line, int) else 0
        key = (method, line)
        got = self._methods.get(key)
        if got is None:
            got = self._methods[key] = self._new_frame(method, line)
        return got

    def _new_frame(self, method_ref: Any, line: int) -> int:
        method = self._pool_method.get(method_ref) if isinstance(method_ref, int) else None
        if method is None:
            return -1
        cls = self._pool_class.get(self._f_method.get(method, "type", None))
        if cls is None:
            return -1
        name = f"{self._symbol(self._f_class.get(cls, 'name', None))}.{self._symbol(self._f_method.get(method, 'name', None))}"
        key = (name, line)
        idx = self._frames.get(key)
        if idx is None:
            idx = self._frames[key] = len(self.names)
            self.names.append(name)
            self.lines.append(line)
        return idx

    def _symbol(self, ref: Any) -> str:
        if not isinstance(ref, int):
            return ""
        got = self._symbols.get(ref)
        if got is None:
            sym = self._pool_symbol.get(ref)
            text = self._chunk.text(self._f_symbol.get(sym, "string", None)) if sym is not None else ""
            got = self._symbols[ref] = merge_generated(text)
        return got

    # ---- event handlers

    def _add(self, kind: str, stack: tuple[int, ...], label: int, values: tuple[int, ...]) -> None:
        acc = self.acc[kind]
        key = (stack, label)
        cur = acc.get(key)
        if cur is None:
            acc[key] = list(values)
        else:
            for i, v in enumerate(values):
                cur[i] += v

    def _label(self, values: list[Any], correlated: bool) -> int:
        if not correlated:
            return 0
        f = self._f
        return self.labels.of(f.get(values, "contextId"), f.get(values, "spanId"), f.get(values, "spanName"))

    def _state(self, values: list[Any]) -> str | None:
        ref = self._f.get(values, "state", None)
        return self._states.get(ref) if isinstance(ref, int) else None

    def _execution(self, values: list[Any]) -> None:
        stack = self._stack(self._f.get(values, "stackTrace", None))
        if stack is None:
            return
        label = self._label(values, True)
        state = self._state(values)
        if state is not None and state != "STATE_SLEEPING":
            self._add("cpu", stack, label, (self.period,))
        if self.event == "wall":
            self._add("wall", stack, label, (self.period,))

    def _wall(self, values: list[Any]) -> None:
        stack = self._stack(self._f.get(values, "stackTrace", None))
        if stack is None:
            return
        label = self._label(values, True)
        value = self._int(self._f.get(values, "samples")) * self.period
        if self.event == "wall" and self._state(values) == "STATE_RUNNABLE":
            self._add("cpu", stack, label, (value,))
        self._add("wall", stack, label, (value,))

    def _pair(self, kind: str, values: list[Any], field: str, correlated: bool, ticks: bool = False) -> None:
        stack = self._stack(self._f.get(values, "stackTrace", None))
        if stack is None:
            return
        amount = self._int(self._f.get(values, field))
        if ticks and self._tps and self._tps != 10**9:
            amount = amount * 10**9 // self._tps
        self._add(kind, stack, self._label(values, correlated), (1, amount))

    def _live(self, values: list[Any]) -> None:
        stack = self._stack(self._f.get(values, "stackTrace", None))
        if stack is not None:
            self._add("live", stack, 0, (1,))

    def _setting(self, values: list[Any]) -> None:
        if self._chunk.text(self._f.get(values, "name", None)) == "event":
            self.event = self._chunk.text(self._f.get(values, "value", None))

    @staticmethod
    def _int(v: Any) -> int:
        return signed64(v) if isinstance(v, int) else 0

    # ---- profiles

    def stacks(self, kinds: list[str], columns: list[tuple[int, int]], ntypes: int) -> tuple[Stacks, int]:
        """CSR stacks of ``kinds`` (kind ``i``'s values in columns ``columns[i]``)."""
        keys: list[tuple[tuple[int, ...], int]] = []
        rows: list[tuple[int, int, list[int]]] = []
        for kind, (lo, _) in zip(kinds, columns, strict=True):
            for key, vals in self.acc[kind].items():
                keys.append(key)
                rows.append((len(rows), lo, vals))
        n = len(keys)
        lengths = np.fromiter((len(k[0]) for k in keys), dtype=np.int64, count=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] > self.limits.max_samples:
            fail(f"{int(offsets[-1])} stack frames in all exceed the {self.limits.max_samples} limit")
        frames = np.fromiter(chain.from_iterable(k[0] for k in keys), dtype=np.int64, count=int(offsets[-1]))
        values = np.zeros((n, ntypes), dtype=np.int64)
        try:
            for row, lo, vals in rows:
                values[row, lo : lo + len(vals)] = vals
        except OverflowError:
            fail("an event value sum exceeds the int64 range")
        label_index = np.fromiter((k[1] for k in keys), dtype=np.int64, count=n)
        marker = len(self.names)
        offsets, frames, truncated = truncate_depth(offsets, frames, self.limits.max_stack_depth, marker=marker)
        names = [*self.names, TRUNCATED_FRAME] if truncated else self.names
        lines = [*self.lines, 0] if truncated else self.lines
        stacks = Stacks(
            names=names, files=[""] * len(names), offsets=offsets, frames=frames, values=values,
            lines=lines if self.keep_lines else None, label_index=label_index, label_sets=self.labels.sets,
        )
        return stacks, truncated


def _read(data: bytes, limits: Limits, sample_rate: int, labels: bytes | None, keep_lines: bool) -> _Collector:
    raw = maybe_gunzip(bytes(data) if not isinstance(data, bytes) else data, FMT, limits)
    if not raw.startswith(MAGIC):
        fail("not a JFR recording (no FLR magic)", "byte 0")
    col = _Collector(limits, keep_lines, _Labels(labels, limits), sample_rate)
    try:
        for chunk in JfrReader(raw, limits).chunks():
            col.read(chunk)
    except IndexError:
        fail("truncated recording")
    return col


def decode_jfr_profiles(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    labels: bytes | None = None,
    keep_lines: bool = False,
    time_nanos: int | None = None,
    duration_nanos: int | None = None,
) -> JfrRecording:
    """One profile per event kind found (see the module contract). ``labels`` is the
    agent's ``LabelsSnapshot`` (gzipped or not); ``time_nanos``/``duration_nanos`` default
    to the recording's own span."""
    col = _read(data, limits, sample_rate, labels, keep_lines)
    t0 = col.start_nanos if time_nanos is None else time_nanos
    dur = col.end_nanos - col.start_nanos if duration_nanos is None else duration_nanos
    out = []
    for key, kind in KINDS.items():
        if not col.acc[key]:
            continue
        stacks, truncated = col.stacks([key], [(0, len(kind.sample_types))], len(kind.sample_types))
        period = col.period if key in ("cpu", "wall") else 0
        profile = build(
            stacks, kind.sample_types, period_type=kind.period_type, period=period,
            time_nanos=t0, duration_nanos=dur, truncated_stacks=truncated,
        )
        out.append(JfrProfile(key, kind.name, profile))
    return JfrRecording(out, col.event)


def decode_jfr(
    data: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    sample_rate: int | None = None,
    keep_lines: bool = False,
) -> Profile:
    """Every kind of the recording merged into one profile, one column per sample type
    (see the module contract); default type ``cpu`` when the recording has CPU samples."""
    col = _read(data, limits, sample_rate or DEFAULT_SAMPLE_RATE, None, keep_lines)
    kinds = [k for k in KINDS if col.acc[k]] or ["cpu"]
    columns, types = [], []
    for k in kinds:
        sts = KINDS[k].sample_types
        columns.append((len(types), len(types) + len(sts)))
        types += [ValueType(f"block_{st.type}", st.unit) if k == "park" else st for st in sts]
    stacks, truncated = col.stacks(kinds, columns, len(types))
    first = KINDS[kinds[0]]
    return build(
        stacks, types, period_type=first.period_type, period=col.period if kinds[0] in ("cpu", "wall") else 0,
        default_sample_type=types[0].type, time_nanos=col.start_nanos,
        duration_nanos=col.end_nanos - col.start_nanos, truncated_stacks=truncated,
    )


__all__ = ["DEFAULT_SAMPLE_RATE", "KINDS", "JfrProfile", "JfrRecording", "decode_jfr", "decode_jfr_profiles", "merge_generated"]
