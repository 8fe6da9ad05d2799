"""Process-wide LRU cache of decoded segments, shared by the writer and the query path.

Segments are immutable, so a decoded :class:`~fleetprof.segment.format.Segment` can be
reused by any later query of the same object. Keys are ``(store URL, object key)``. The
segment writer inserts every segment it has just made durable (after the ack, off the
ack path), so a server answers queries over what it ingested without re-reading it; the
query path inserts what it decodes. Bounded by ``FLEETPROF_SEGMENT_CACHE_MB`` (default
512; 0 disables).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from fleetprof.segment.format import Segment, decode_segment
from fleetprof.storage.objectstore import ObjectStore


class SegmentCache:
    """Thread-safe LRU of decoded segments, bounded by (approximate) bytes held."""

    ENTRY_OVERHEAD = 4096  # Parquet footer metadata and Python objects per entry

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple[str, str], tuple[Segment, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Event] = {}
        self.hits = 0
        self.misses = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, str]) -> Segment | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def claim(self, key: tuple[str, str]) -> tuple[Segment | None, threading.Event | None]:
        """``(segment, None)`` when ``key`` is cached; ``(None, event)`` while another
        thread loads it (wait for ``event``, then :meth:`get`: it may still be missing);
        else ``(None, None)``: the caller loads it and must :meth:`release` it afterwards
        (after its :meth:`put`), so that concurrent queries decode each segment once."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item[0], None
            event = self._loading.get(key)
            if event is not None:
                return None, event
            self._loading[key] = threading.Event()
            self.misses += 1
            return None, None

    def release(self, key: tuple[str, str]) -> None:
        """End the load of ``key`` claimed with :meth:`claim` (also when it failed)."""
        with self._lock:
            event = self._loading.pop(key, None)
        if event is not None:
            event.set()

    def put(self, key: tuple[str, str], seg: Segment) -> None:
        size = seg.nbytes() + self.ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (seg, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, sz) = self._items.popitem(last=False)
                self._bytes -= sz

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


SEGMENT_CACHE = SegmentCache(int(float(os.environ.get("FLEETPROF_SEGMENT_CACHE_MB", "512")) * 1024 * 1024))
"""Process-wide cache of decoded segments (see module docstring)."""


def cache_key(store: ObjectStore, key: str) -> tuple[str, str]:
    """Cache key of object ``key`` of ``store``."""
    return (str(getattr(store, "url", None) or id(store)), key)


def remember_encoded(store: ObjectStore, key: str, data: bytes) -> None:
    """Cache the segment whose encoded bytes ``data`` were just stored under ``key``, with
    the columns every query reads already decoded (segments decode lazily; see
    :meth:`~fleetprof.segment.format.Segment.preload`)."""
    if SEGMENT_CACHE.max_bytes <= 0:
        return
    seg = decode_segment(data)
    seg.preload()
    SEGMENT_CACHE.put(cache_key(store, key), seg)
