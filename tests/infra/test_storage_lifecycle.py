"""S3 lifecycle of the profile store, modelled as S3 applies it: no rule may expire a segment.

Segments are deleted only by the workers (GC of compacted inputs, retention), after their
index entry is tombstoned; a lifecycle expiry of a current segment object would lose
uncompacted data and leave index rows pointing at nothing. The model follows S3's rule
matching: an enabled rule applies to an object when its filter's prefix starts the key and
every tag of the filter is on the object; it expires the current version when it has an
``expiration`` with ``days`` or ``date`` (``expiredObjectDeleteMarker`` only removes delete
markers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from infra_support import one, rendered

from components.preview import normalize
from components.storage import SEGMENTS_PREFIX
from fleetprof.segment.keys import new_segment_id, segment_key

LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
T0 = 1_795_132_800_000


def rule_filter(rule: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """``(prefix, required tags)`` of a rule's filter (``prefix``, ``tag`` or ``and``)."""
    f = rule.get("filter") or {}
    both = f.get("and") or {}
    prefix = f.get("prefix") or both.get("prefix") or rule.get("prefix") or ""
    tags = dict(both.get("tags") or {})
    if f.get("tag"):
        tags[f["tag"]["key"]] = f["tag"]["value"]
    return prefix, tags


def expires_current(rule: Mapping[str, Any]) -> bool:
    exp = rule.get("expiration") or {}
    return rule.get("status") == "Enabled" and bool(exp.get("days") or exp.get("date"))


def expiring_rules(rules: Iterable[Mapping[str, Any]], key: str, tags: Mapping[str, str] | None = None) -> list[str]:
    """Ids of the rules that would expire the current version of ``key`` carrying ``tags``."""
    have = dict(tags or {})
    out = []
    for r in rules:
        prefix, need = rule_filter(r)
        if expires_current(r) and key.startswith(prefix) and all(have.get(k) == v for k, v in need.items()):
            out.append(r["id"])
    return out


def rules_expiring_segments(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    """Rules that would expire some untagged segment object: a prefix that starts every
    segment key or starts inside ``segments/``, checked against real keys of every level."""
    rules = list(rules)
    found = set()
    for r in rules:
        prefix, need = rule_filter(r)
        if expires_current(r) and not need and (SEGMENTS_PREFIX.startswith(prefix) or prefix.startswith(SEGMENTS_PREFIX)):
            found.add(r["id"])
    keys = [segment_key(t, level, new_segment_id(T0), T0) for t in ("t1", "L0", "acme") for level in (0, 1, 2)]
    for k in keys:
        found.update(expiring_rules(rules, k))
    return sorted(found)


def _rules(stack_name: str) -> list[dict[str, Any]]:
    return normalize(one(rendered(stack_name), LIFECYCLE, "storage-profiles-lifecycle").inputs["rules"])


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_no_lifecycle_rule_expires_a_segment(name: str) -> None:
    rules = _rules(name)
    assert rules_expiring_segments(rules) == []
    ids = {r["id"] for r in rules}
    assert {"expire-noncurrent-versions", "remove-expired-delete-markers"} <= ids  # what GC's deletes leave
    marker = next(r for r in rules if r["id"] == "remove-expired-delete-markers")
    assert marker["expiration"] == {"expiredObjectDeleteMarker": True}


@pytest.mark.parametrize(("rule", "expected"), [
    ({"id": "expire-l0-segments", "status": "Enabled", "filter": {"prefix": "segments/L0/"}, "expiration": {"days": 3}},
     ["expire-l0-segments"]),
    ({"id": "all", "status": "Enabled", "filter": {"prefix": ""}, "expiration": {"days": 30}}, ["all"]),
    ({"id": "tenant", "status": "Enabled", "filter": {"and": {"prefix": "segments/t1/"}}, "expiration": {"days": 9}},
     ["tenant"]),
    ({"id": "off", "status": "Disabled", "filter": {"prefix": ""}, "expiration": {"days": 1}}, []),
    ({"id": "tagged", "status": "Enabled", "filter": {"tag": {"key": "gc", "value": "done"}}, "expiration": {"days": 1}},
     []),
    ({"id": "analysis", "status": "Enabled", "filter": {"prefix": "analysis/"}, "expiration": {"days": 1}}, []),
])
def test_expiring_rules_are_found(rule: dict[str, Any], expected: list[str]) -> None:
    assert rules_expiring_segments([*_rules("prod"), rule]) == expected


def test_rule_matching_follows_s3() -> None:
    tagged = {"id": "g", "status": "Enabled", "filter": {"and": {"prefix": "segments/", "tags": {"gc": "done"}}},
              "expiration": {"days": 1}}
    key = segment_key("t1", 0, new_segment_id(T0), T0)
    assert expiring_rules([tagged], key) == []
    assert expiring_rules([tagged], key, {"gc": "done"}) == ["g"]
    old_l0 = {"id": "l0", "status": "Enabled", "filter": {"prefix": "segments/L0/"}, "expiration": {"days": 3}}
    assert expiring_rules([old_l0], segment_key("L0", 2, new_segment_id(T0), T0)) == ["l0"]  # tenant "L0", any level
