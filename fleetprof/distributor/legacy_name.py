"""Pyroscope's legacy series key ``app.cpu{env=prod,region=eu}``."""

from __future__ import annotations

import re

_KEY = re.compile(r"^\s*([^{}]+?)\s*(?:\{(.*)\})?\s*$", re.S)


class NameError_(ValueError):
    pass


def parse_legacy_name(text: str) -> tuple[str, dict[str, str]]:
    """``"app.cpu{k=v,k2=v2}"`` → ``("app.cpu", {"k": "v", "k2": "v2"})``; ``ValueError``
    for an empty name or a label without ``=``."""
    m = _KEY.match(text or "")
    if not m:
        raise NameError_(f"bad name {text!r}: expected app.type{{key=value,...}}")
    labels: dict[str, str] = {}
    body = m.group(2)
    if body:
        for part in body.split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            if not sep or not k.strip():
                raise NameError_(f"bad label {part.strip()!r} in name: expected key=value")
            labels[k.strip()] = v.strip().strip('"')
    return m.group(1), labels


# legacy suffix → (profile name, sample type, sample unit, period type, period unit)
LEGACY_TYPES: dict[str, tuple[str, str, str, str, str]] = {
    "cpu": ("process_cpu", "cpu", "nanoseconds", "cpu", "nanoseconds"),
    "itimer": ("process_cpu", "cpu", "nanoseconds", "cpu", "nanoseconds"),
    "wall": ("wall", "wall", "nanoseconds", "wall", "nanoseconds"),
    "alloc_objects": ("memory", "alloc_objects", "count", "space", "bytes"),
    "alloc_space": ("memory", "alloc_space", "bytes", "space", "bytes"),
    "inuse_objects": ("memory", "inuse_objects", "count", "space", "bytes"),
    "inuse_space": ("memory", "inuse_space", "bytes", "space", "bytes"),
    "goroutines": ("goroutine", "goroutine", "count", "goroutine", "count"),
    "mutex_count": ("mutex", "contentions", "count", "contentions", "count"),
    "mutex_duration": ("mutex", "delay", "nanoseconds", "contentions", "count"),
    "block_count": ("block", "contentions", "count", "contentions", "count"),
    "block_duration": ("block", "delay", "nanoseconds", "contentions", "count"),
    "alloc_in_new_tlab_objects": ("memory", "alloc_in_new_tlab_objects", "count", "space", "bytes"),
    "alloc_in_new_tlab_bytes": ("memory", "alloc_in_new_tlab_bytes", "bytes", "space", "bytes"),
    "lock_count": ("mutex", "contentions", "count", "contentions", "count"),
    "lock_duration": ("mutex", "delay", "nanoseconds", "contentions", "count"),
}


def split_app(name: str) -> tuple[str, str | None]:
    """``"app.cpu"`` → ``("app", "cpu")`` when the suffix is a known legacy type, else
    ``(name, None)``."""
    app, dot, suffix = name.rpartition(".")
    if dot and app and suffix in LEGACY_TYPES:
        return app, suffix
    return name, None
