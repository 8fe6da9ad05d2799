"""Explicit resource tags.

Provider ``defaultTags`` are invisible to unit tests and policies, so every component sets
Project/Environment/Owner/CostCenter itself through :func:`tags`.
"""

from __future__ import annotations

from collections.abc import Mapping

REQUIRED_TAG_KEYS: tuple[str, ...] = ("Project", "Environment", "Owner", "CostCenter")
PROJECT = "fleetprof"


def base_tags(environment: str, owner: str, cost_center: str) -> dict[str, str]:
    """The four required tags for one stack."""
    return {
        "Project": PROJECT,
        "Environment": environment,
        "Owner": owner,
        "CostCenter": cost_center,
    }


def tags(base: Mapping[str, str], name: str | None = None, **extra: str) -> dict[str, str]:
    """``base`` plus an optional ``Name`` and extra tags; the required keys cannot be overridden."""
    out: dict[str, str] = dict(extra)
    if name:
        out["Name"] = name
    out.update(base)
    return out


def asg_tags(base: Mapping[str, str], name: str) -> list[dict[str, object]]:
    """Tags in the Auto Scaling group shape (propagated to launched instances)."""
    return [
        {"key": k, "value": v, "propagate_at_launch": True}
        for k, v in sorted(tags(base, name).items())
    ]
