"""The rendered resource graph as AWS would see it: resources looked up by id, ARN or name.

Contract: :class:`Graph` wraps one :class:`components.mockrun.Rendering` and answers
lookups over the *resolved* inputs the program registered (the mock monitor resolves
outputs of other resources to the deterministic ids/ARNs of :mod:`components.mockrun`), so
a reference such as ``securityGroups: ["sg-1a2b3c4d"]`` leads back to the resource that
owns that id. Nothing here is specific to one concern; the checks in this package
(reachability, key grants, WAF effect) build on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from components.mockrun import MockResource, Rendering


def doc(value: Any) -> Any:
    """A policy/definition value as a Python object (JSON strings are parsed; None stays None)."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def as_list(value: Any) -> list:
    """``value`` as a list (None -> [], a scalar -> [value])."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Graph:
    """Index of one rendering: by type, by logical name, by physical id and by ARN."""

    def __init__(self, rendering: Rendering) -> None:
        self.rendering = rendering
        self.resources: list[MockResource] = [r for r in rendering.resources if r.custom]
        self._by_ref: dict[str, MockResource] = {}
        for r in self.resources:
            for ref in (r.id, r.outputs.get("arn"), r.outputs.get("name"), r.outputs.get("bucket")):
                if isinstance(ref, str) and ref:
                    self._by_ref.setdefault(ref, r)

    @property
    def stack(self) -> str:
        return self.rendering.stack

    def of_type(self, type_: str) -> list[MockResource]:
        """Custom resources of one type token, in URN order."""
        return [r for r in self.resources if r.type == type_]

    def named(self, type_: str, name: str) -> MockResource:
        """The one resource of ``type_`` with logical ``name`` (KeyError if absent or ambiguous)."""
        found = [r for r in self.of_type(type_) if r.name == name]
        if len(found) != 1:
            raise KeyError(f"expected one {type_} named {name!r}, found {len(found)}")
        return found[0]

    def ref(self, value: Any) -> MockResource | None:
        """The resource whose id, ARN, name or bucket name is ``value`` (None if none)."""
        return self._by_ref.get(value) if isinstance(value, str) else None

    def refs(self, values: Iterable[Any]) -> Iterator[MockResource]:
        """The resources that ``values`` refer to (unknown references are skipped)."""
        for v in values:
            r = self.ref(v)
            if r is not None:
                yield r

    def children_of(self, component: str) -> list[MockResource]:
        """Custom resources whose parent component is named ``component``."""
        return [r for r in self.resources if r.parent_name == component]

    def ref_of_type(self, value: Any, type_: str) -> MockResource | None:
        """The resource of ``type_`` whose id, ARN, name or bucket name is ``value`` (None if
        none); unlike :meth:`ref`, never a resource of another type echoing the same value."""
        if not isinstance(value, str):
            return None
        for r in self.of_type(type_):
            if value in (r.id, r.outputs.get("arn"), r.outputs.get("name"), r.outputs.get("bucket")):
                return r
        return None
