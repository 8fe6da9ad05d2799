"""Offline policy evaluation: ``python -m policies.offline --stack dev|staging|prod``.

Renders the stack under Pulumi mocks (:mod:`components.mockrun`), runs every rule of
:mod:`policies.rules` over the recorded resources with the requirements of the stack's
environment class (:func:`policies.rules.stack_policy_config`), prints a table (rule,
resource, message) and
exits 1 if any mandatory rule is violated (all rules are mandatory), 0 otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from components.mockrun import MockResource, Rendering, parse_stack_command, render
from components.preview import normalize
from policies.rules import RULES, Res, Rule, stack_policy_config


@dataclass(frozen=True)
class Finding:
    """One violation."""

    rule: str
    resource: str  # "type name", or "(stack)"
    message: str


def to_res(resources: Sequence[MockResource]) -> list[Res]:
    """Mock-rendered resources as the rules see them (custom resources only)."""
    return [
        Res(type=r.type, name=r.name, urn=r.urn, props=normalize(r.inputs), deps=r.property_dependencies)
        for r in resources
        if r.custom
    ]


def evaluate(
    resources: Sequence[Res],
    config: Mapping[str, Mapping[str, Any]] | None = None,
    rules: Sequence[Rule] = RULES,
) -> list[Finding]:
    """Run ``rules`` over ``resources``; ``config`` is per-rule (missing keys: strict defaults)."""
    config = config or {}
    by_urn = {r.urn: r for r in resources}
    findings: list[Finding] = []
    for rule in rules:
        c = {**rule.defaults(), **config.get(rule.name, {})}
        if rule.resource_check is not None:
            for r in resources:
                for message in rule.resource_check(r.type, r.props, c):
                    findings.append(Finding(rule.name, f"{r.type} {r.name}", message))
        elif rule.stack_check is not None:
            for urn, message in rule.stack_check(resources, c):
                target = by_urn.get(urn) if urn else None
                findings.append(Finding(rule.name, f"{target.type} {target.name}" if target else "(stack)", message))
    return sorted(findings, key=lambda f: (f.rule, f.resource, f.message))


def evaluate_rendering(rendering: Rendering) -> list[Finding]:
    """Evaluate every rule over a rendered stack with its environment class's requirements."""
    return evaluate(to_res(rendering.resources), stack_policy_config(rendering.stack))


def print_report(stack: str, findings: Sequence[Finding], n_resources: int, console: Console) -> None:
    table = Table(title=f"fleetprof policy pack — stack {stack}", show_lines=False)
    table.add_column("rule", style="bold")
    table.add_column("resource")
    table.add_column("message")
    for f in findings:
        table.add_row(f.rule, f.resource, f.message)
    if findings:
        console.print(table)
        console.print(f"[red]{len(findings)} mandatory violation(s)[/red] over {n_resources} resources, {len(RULES)} rules")
    else:
        console.print(f"[green]stack {stack}: {len(RULES)} mandatory rules, {n_resources} resources, no violations[/green]")
        overview = Table(title="rules evaluated")
        overview.add_column("rule", style="bold")
        overview.add_column("kind")
        overview.add_column("description")
        for r in RULES:
            overview.add_row(r.name, "resource" if r.resource_check else "stack", r.description)
        console.print(overview)


def main(argv: list[str] | None = None) -> int:
    ns = parse_stack_command(
        argv,
        "python -m policies.offline",
        __doc__.splitlines()[0],
        flag="--emit-config",
        flag_help="print the --policy-pack-config JSON for the stack and exit",
    )
    if ns is None:
        return 2
    rendering = render(ns.stack)
    if ns.emit_config:
        print(json.dumps(stack_policy_config(ns.stack), indent=2, sort_keys=True))
        return 0
    findings = evaluate_rendering(rendering)
    print_report(ns.stack, findings, len(to_res(rendering.resources)), Console(width=160))
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
