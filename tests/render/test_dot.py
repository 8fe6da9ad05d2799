"""The DOT renderer: hostile names stay inside their quoted strings; limits and totals."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import cpu_profile  # noqa: E402

from fleetprof.render.dot import dot_quote, render_dot  # noqa: E402

HOSTILE = 'evil"] ; x -> y [label="pwn\\\n}'


def test_quote_escapes_quotes_backslashes_and_newlines() -> None:
    q = dot_quote(HOSTILE)
    assert re.fullmatch(r'"(?:[^"\\\n]|\\.)*"', q), q


def test_hostile_names_cannot_add_statements() -> None:
    text = render_dot(cpu_profile([["main", HOSTILE], ["main", "ok"]], [30, 10]), 0)
    statements = text.strip().splitlines()
    assert statements[0].startswith("digraph") and statements[-1] == "}"
    bodies = [re.sub(r'"(?:[^"\\]|\\.)*"', '""', s) for s in statements[1:-1]]
    assert all(re.fullmatch(r'(node|legend|N\d+)( -> N\d+)? \[[^\[\]"]*(""[^\[\]"]*)*\];', b) for b in bodies), bodies
    assert sum(" -> " in b for b in bodies) == 2


def test_max_nodes_and_empty() -> None:
    p = cpu_profile([["a", "b", "c", "d"], ["a", "e"]], [5, 7])
    assert len(re.findall(r"^N\d+ \[", render_dot(p, 0, max_nodes=2), re.M)) == 2
    assert render_dot(cpu_profile([["a"]], [0]), 0) == ""
