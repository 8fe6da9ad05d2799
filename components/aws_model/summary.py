"""What AWS would do with one rendered stack, in a few lines per concern.

Contract: :func:`summary_lines` gathers the ``facts`` of every check in this package
(image origin, container run, task and collector sidecar, Ray nodes' traces, reachability, key users, WAF decisions, log deliveries) under a heading per
concern, in a fixed order; :func:`problems` gathers every check's structured findings (an
empty list: AWS would run the stack as intended), so ``make preview`` can list them and fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from components.aws_model import (
    container,
    delivery,
    images,
    kms,
    ray_nodes,
    reachability,
    task,
    waf,
)
from components.aws_model.graph import Graph
from components.mockrun import REPO_ROOT, Rendering


def _sections(dockerfile: Path) -> list[tuple[str, Callable[[Graph], list[str]]]]:
    return [
        ("images", images.facts),
        ("container", lambda g: container.facts(g, dockerfile)),
        ("task", task.facts),
        ("Ray nodes", ray_nodes.facts),
        ("reachability", reachability.facts),
        ("key grants", kms.facts),
        ("WAF", waf.facts),
        ("log deliveries", delivery.facts),
    ]


def summary_lines(rendering: Rendering, dockerfile: Path = REPO_ROOT / "Dockerfile") -> list[str]:
    """``== <concern> ==`` headings, each followed by its facts, indented."""
    graph = Graph(rendering)
    lines = [f"what AWS would do with stack {rendering.stack}:"]
    for title, facts in _sections(dockerfile):
        found = facts(graph)
        lines.append(f"== {title} ==")
        lines.extend(f"  {line}" for line in found or ["(nothing to check)"])
    return lines


def problems(rendering: Rendering, dockerfile: Path = REPO_ROOT / "Dockerfile") -> list[str]:
    """Every finding of every check, prefixed with its concern."""
    graph = Graph(rendering)
    runs = container.service_runs(graph, dockerfile)
    found = [f"images: {p}" for p in images.image_problems(graph)]
    found += [
        f"container {name}: {p}"
        for name, run in sorted(runs.items())
        for p in container.problems(run) + container.secret_problems(graph, run)
    ]
    found += [f"task: {p}" for p in task.task_problems(graph) + task.collector_problems(graph)]
    found += [f"Ray nodes: {p}" for p in ray_nodes.problems(graph)]
    found += [f"reachability: {p}" for p in reachability.analyze(graph).problems()]
    found += [f"key grants: {p}" for p in kms.analyze(graph).problems()]
    found += [f"WAF: {p}" for p in waf.findings(graph)]
    found += [f"log deliveries: {p}" for p in delivery.analyze(graph)]
    return found
