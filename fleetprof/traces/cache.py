"""Process-wide LRU of decoded span segments (:class:`~fleetprof.traces.format.SpanSegment`).

Segments are immutable, so a decoded one serves every later query of the same object.
Keys are ``(store URL, object key)``. The span writer inserts each segment it made durable
(after the ack); queries insert what they read. Bounded by ``FLEETPROF_SPAN_CACHE_MB``
(default 512; 0 disables); an entry weighs four times its object size (decoded columns).
Segment heads (meta and trace filter, :func:`~fleetprof.traces.format.read_head`) read
without their body are kept too, within an eighth of that bound.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from fleetprof.storage.objectstore import ObjectStore
from fleetprof.traces.format import SegmentHead, SpanSegment, decode, read_head

WEIGHT = 4


class SpanCache:
    """Thread-safe LRU of decoded span segments, bounded by approximate bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], SpanSegment] = OrderedDict()
        self._bytes = 0
        self._heads: OrderedDict[tuple[str, str], SegmentHead] = OrderedDict()
        self._head_bytes = 0
        self._lock = threading.Lock()

    def head(self, store: ObjectStore, key: str) -> SegmentHead:
        """The head of the segment at ``key`` (from the decoded segment when cached)."""
        k = (getattr(store, "url", repr(store)), key)
        with self._lock:
            seg = self._items.get(k)
            if seg is not None:
                self._items.move_to_end(k)
                return seg.head
            head = self._heads.get(k)
            if head is not None:
                self._heads.move_to_end(k)
                return head
        head, seg = read_head(store, key)
        if seg is not None:
            self.put(store, key, seg)
            return head
        w = _head_weight(head)
        with self._lock:
            if k not in self._heads and w <= self.max_bytes // 8:
                self._heads[k] = head
                self._head_bytes += w
                while self._head_bytes > self.max_bytes // 8 and self._heads:
                    _, ev = self._heads.popitem(last=False)
                    self._head_bytes -= _head_weight(ev)
        return head

    def get(self, store: ObjectStore, key: str) -> SpanSegment:
        """The decoded segment at ``key`` (read and decoded on a miss)."""
        k = (getattr(store, "url", repr(store)), key)
        with self._lock:
            seg = self._items.get(k)
            if seg is not None:
                self._items.move_to_end(k)
                return seg
        seg = decode(store.get(key))
        self.put(store, key, seg)
        return seg

    def put(self, store: ObjectStore, key: str, seg: SpanSegment) -> None:
        w = seg.nbytes * WEIGHT
        if w > self.max_bytes:
            return
        k = (getattr(store, "url", repr(store)), key)
        with self._lock:
            old = self._items.pop(k, None)
            if old is not None:
                self._bytes -= old.nbytes * WEIGHT
            self._items[k] = seg
            self._bytes += w
            while self._bytes > self.max_bytes and self._items:
                _, ev = self._items.popitem(last=False)
                self._bytes -= ev.nbytes * WEIGHT

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self._heads.clear()
            self._head_bytes = 0


def _head_weight(head: SegmentHead) -> int:
    return 512 + 8 * (0 if head.words is None else len(head.words)) + 64 * len(head.meta.get("resources", ()))


CACHE = SpanCache(int(float(os.environ.get("FLEETPROF_SPAN_CACHE_MB", "512")) * 1024 * 1024))
