"""The decode gate: at most ``slots`` large ingest decodes at once.

A request whose body, or whose decompressed data, outgrows ``ungated_bytes`` must hold a
slot while it is decoded; when every slot is taken it is refused at once (429 with
``Retry-After``) instead of queueing, so memory stays bounded by ``slots`` × the largest
accepted request and small pushes (decoded without a slot) never wait behind big uploads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from fleetprof.server.errors import ApiError


class DecodeGate:
    """Non-blocking counting gate (thread-safe); ``slots <= 0`` refuses every large decode."""

    def __init__(self, slots: int, ungated_bytes: int, retry_after_s: int = 1) -> None:
        self.slots = slots
        self.ungated_bytes = ungated_bytes
        self.retry_after_s = retry_after_s
        self.busy = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the ``with`` body, or raise 429 with ``Retry-After`` if none is free."""
        with self._lock:
            if self.busy >= self.slots:
                raise ApiError(
                    429,
                    f"the server is decoding {self.busy} large uploads already; retry later",
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            self.busy += 1
        try:
            yield
        finally:
            with self._lock:
                self.busy -= 1
