"""Small profiles for storage tests (folded-style dicts → model profiles)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))

from stackutil import folded, make  # noqa: E402

CPU_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
ALLOC_TYPE = "memory:alloc_space:bytes:space:bytes"

__all__ = ["ALLOC_TYPE", "CPU_TYPE", "folded", "make"]
