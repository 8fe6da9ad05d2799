"""Environment classes: the per-stack policy requirements, from a separately reviewed file.

Contract: ``policies/environment_classes.yaml`` maps each stack name to a class and each class
to the controls it requires (:data:`CONTROLS`); a stack it does not list gets
``default_class``. :func:`class_config` turns a stack's class into the per-rule config of
:mod:`policies.rules` (a required control sets its rule's key strictly, an optional one relaxes
it). The pack and the offline evaluator take these values over any config they are given, so
neither a stack file nor a ``--policy-pack-config`` file can relax a control its class
requires. :func:`stack_of_urn` reads the stack name from a resource URN (what CrossGuard hands
the pack). A malformed file raises :class:`ValueError` naming the problem.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

CLASSES_FILE = Path(__file__).resolve().parent / "environment_classes.yaml"

CONTROLS: dict[str, tuple[str, str, bool]] = {
    "waf": ("waf-attached", "required", True),
    "pitr": ("dynamodb-pitr", "required", True),
    "deletion-protection": ("deletion-protection", "required", True),
    "https": ("alb-https", "allowPlainHttp", False),
    "auth": ("service-auth", "required", True),
    "nat-per-az": ("nat-per-az", "required", True),
    "backups": ("backup-configured", "required", True),
    "audit-trail": ("cloudtrail-audit", "required", True),
    "dr": ("dr-replication", "required", True),
    "config-recorder": ("account-monitoring", "config", True),
    "guard-duty": ("account-monitoring", "guardDuty", True),
    "security-hub": ("account-monitoring", "securityHub", True),
}
"""control -> (rule, config key, the key's value when the control is required; the opposite
when it is not)."""


@functools.cache
def load(path: Path = CLASSES_FILE) -> dict[str, Any]:
    """The parsed classes file, checked: every stack names a class, every class lists known
    controls, the default class exists."""
    doc = yaml.safe_load(path.read_text()) or {}
    classes, stacks = doc.get("classes") or {}, doc.get("stacks") or {}
    for name, spec in classes.items():
        unknown = set((spec or {}).get("requires") or []) - set(CONTROLS)
        if unknown:
            raise ValueError(f"{path.name}: class {name} requires unknown controls {sorted(unknown)}")
    for stack, cls in {**stacks, "(default)": doc.get("default_class")}.items():
        if cls not in classes:
            raise ValueError(f"{path.name}: stack {stack} has unknown class {cls!r}")
    return doc


def stack_class(stack: str, path: Path = CLASSES_FILE) -> str:
    """The class of ``stack`` (``default_class`` when the file does not list it)."""
    doc = load(path)
    return (doc.get("stacks") or {}).get(stack) or doc["default_class"]


def required_controls(stack: str, path: Path = CLASSES_FILE) -> frozenset[str]:
    """The controls ``stack``'s class requires."""
    return frozenset(load(path)["classes"][stack_class(stack, path)].get("requires") or [])


def class_config(stack: str, path: Path = CLASSES_FILE) -> dict[str, dict[str, Any]]:
    """Per-rule config of ``stack`` from its class (every rule of :data:`CONTROLS`)."""
    required = required_controls(stack, path)
    out: dict[str, dict[str, Any]] = {}
    for control, (rule, key, strict) in CONTROLS.items():
        out.setdefault(rule, {})[key] = strict if control in required else not strict
    return out


def stack_of_urn(urn: str) -> str:
    """The stack of a Pulumi URN (``urn:pulumi:<stack>::<project>::...``); ``""`` if none."""
    parts = urn.split(":", 2)
    return parts[2].split("::", 1)[0] if len(parts) == 3 and parts[:2] == ["urn", "pulumi"] else ""
