"""The README's configuration table, generated from ``Pulumi.yaml`` and the stack files.

Contract: :func:`config_table` renders one Markdown row per key of the ``config:`` schema
of ``Pulumi.yaml`` (project keys only, in schema order): key, type, default, the value of
each stack in promotion order (``·`` when the stack keeps the default) and the description.
``python -m components.config_table`` prints it; a test keeps the README's copy identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.mockrun import PROJECT, REPO_ROOT, list_stacks

DEFAULT_MARK = "·"
PROMOTION_ORDER = ("dev", "staging", "prod")


def _cell(value: Any) -> str:
    """A config value as table text (lists joined, empty string shown as ``""``)."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(str(value).split())
    return '""' if text == "" else text.replace("|", "\\|")


def _stack_values(stack: str, root: Path) -> dict[str, Any]:
    data = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()) or {}
    out = {}
    for key, value in (data.get("config") or {}).items():
        namespace, _, name = key.rpartition(":")
        if namespace in ("", PROJECT):
            out[name] = value
    return out


def config_table(root: Path = REPO_ROOT) -> str:
    """The Markdown table (module contract)."""
    schema = yaml.safe_load((root / "Pulumi.yaml").read_text())["config"]
    stacks = sorted(list_stacks(root), key=lambda s: (PROMOTION_ORDER.index(s) if s in PROMOTION_ORDER else 99, s))
    values = {s: _stack_values(s, root) for s in stacks}
    head = ["key (`fleetprof:`)", "type", "default", *stacks, "description"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, spec in schema.items():
        if ":" in key:
            continue
        cells = [f"`{key}`", spec.get("type", ""), _cell(spec.get("default", ""))]
        for s in stacks:
            cells.append(_cell(values[s][key]) if key in values[s] else DEFAULT_MARK)
        cells.append(_cell(spec.get("description", "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(config_table(), end="")
