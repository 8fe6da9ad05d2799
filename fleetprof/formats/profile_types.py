"""Pyroscope profile type ids: ``name:sample_type:sample_unit:period_type:period_unit``.

``name`` is the profile's ``__name__`` label as agents send it (``process_cpu``,
``memory``, ``mutex``, ``block``, ``wall``, ``goroutines``); the other four parts come
from one pprof sample type and the profile's period type, e.g.
``process_cpu:cpu:nanoseconds:cpu:nanoseconds`` or ``memory:alloc_space:bytes:space:bytes``.
A profile with several sample types has one id per type (same order as ``v0``, ``v1`` …).
A missing period type gives empty parts (``name:samples:count::``), as Pyroscope does.

Parsed ids (:meth:`ProfileTypeId.parse`, and query selectors through
:func:`check_profile_type_parts`) allow only Pyroscope's name alphabet in every part:
letters, digits, ``_``, ``.`` and ``-``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fleetprof.model.profile import Profile, ValueType

KNOWN_NAMES = ("process_cpu", "memory", "mutex", "block", "wall", "goroutines")
"""``__name__`` values sent by Pyroscope agents."""

PART_NAMES = ("name", "sample type", "sample unit", "period type", "period unit")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def check_profile_type_parts(parts: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first part (of the five) with a character outside
    letters, digits, ``_``, ``.`` and ``-``."""
    for label, part in zip(PART_NAMES, parts, strict=False):
        bad = _UNSAFE.search(part)
        if bad:
            raise ValueError(
                f"invalid character {bad.group(0)!r} in the {label} of the profile type"
                " (allowed: letters, digits, '_', '.', '-')"
            )


@dataclass(frozen=True, order=True)
class ProfileTypeId:
    """One Pyroscope profile type id."""

    name: str
    sample_type: str
    sample_unit: str
    period_type: str = ""
    period_unit: str = ""

    def __str__(self) -> str:
        return ":".join((self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit))

    @property
    def id(self) -> str:
        return str(self)

    @property
    def value_type(self) -> ValueType:
        return ValueType(self.sample_type, self.sample_unit)

    @classmethod
    def parse(cls, text: str) -> ProfileTypeId:
        """Parse ``name:sample_type:sample_unit:period_type:period_unit`` (exactly five
        colon-separated parts; name, sample type and unit must be non-empty; every part in
        the alphabet of :func:`check_profile_type_parts`)."""
        parts = text.split(":")
        if len(parts) != 5 or not all(parts[:3]):
            raise ValueError(f"invalid profile type id {text!r} (want name:sample_type:sample_unit:period_type:period_unit)")
        check_profile_type_parts(parts)
        return cls(*parts)


def profile_type_id(profile: Profile, name: str, index: int) -> ProfileTypeId:
    """The id of sample type ``index`` of ``profile`` under profile name ``name``."""
    st = profile.sample_types[index]
    pt = profile.period_type
    return ProfileTypeId(name, st.type, st.unit, pt.type if pt else "", pt.unit if pt else "")


def profile_type_ids(profile: Profile, name: str) -> list[str]:
    """One id per sample type of ``profile``, in value-column order."""
    return [str(profile_type_id(profile, name, i)) for i in range(len(profile.sample_types))]


def infer_name(profile: Profile) -> str:
    """Best-effort ``__name__`` for a profile sent without one (a bare pprof upload),
    from its sample and period types: ``memory`` for alloc/inuse types, ``goroutines`` for
    goroutine counts, ``mutex``/``block`` for contention profiles, ``wall`` for wall time,
    else ``process_cpu``."""
    types = {st.type for st in profile.sample_types}
    period = profile.period_type.type if profile.period_type else ""
    if any(t.startswith(("alloc_", "inuse_")) for t in types) or period == "space":
        return "memory"
    if "goroutine" in types or "goroutines" in types or period == "goroutine":
        return "goroutines"
    if "contentions" in types or "delay" in types:
        return "block" if period == "block" else "mutex"
    if "wall" in types and "cpu" not in types:
        return "wall"
    return "process_cpu"
