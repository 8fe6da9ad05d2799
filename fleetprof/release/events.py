"""The release event log and the summary table.

Contract: every decision of a run is one :meth:`EventLog.emit` — a JSON object with
``seq``, ``ts`` (epoch s of the injected clock), ``run``, ``version``, ``kind``, and
``wave``/``stack``/``message``/``detail`` where they apply. After each event the whole log
is written to the local file (``--events``, a JSON list) and to the state store
(``events/<run>.json``), so a killed run leaves its log up to the last decision.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetprof.release.clock import Clock


class EventLog:
    """An append-only list of events, persisted on every append (module contract)."""

    def __init__(self, run_id: str, version: str, clock: Clock, path: Path | None = None,
                 sink: Callable[[str, list[dict[str, Any]]], None] | None = None,
                 echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.run_id = run_id
        self.version = version
        self.clock = clock
        self.path = path
        self.sink = sink
        self.echo = echo
        self.events: list[dict[str, Any]] = []

    def emit(self, kind: str, message: str = "", *, wave: str | None = None, stack: str | None = None, **detail: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"seq": len(self.events) + 1, "ts": round(self.clock.now(), 3), "run": self.run_id,
                              "version": self.version, "kind": kind}
        if wave:
            ev["wave"] = wave
        if stack:
            ev["stack"] = stack
        if message:
            ev["message"] = message
        if detail:
            ev["detail"] = detail
        self.events.append(ev)
        self._persist()
        if self.echo:
            self.echo(ev)
        return ev

    def _persist(self) -> None:
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.events, indent=1))
            tmp.replace(self.path)
        if self.sink is not None:
            self.sink(self.run_id, self.events)

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]


OUTCOME_STYLE = {"promoted": "green", "skipped": "dim", "rolled_back": "red", "failed": "red",
                 "blocked": "yellow", "waiting": "yellow", "busy": "yellow", "not_reached": "dim"}


def summary_table(version: str, rows: list[dict[str, str]]) -> Table:
    """One row per wave: stage, wave, stacks, outcome, and why."""
    t = Table(title=f"fleetprof release {version}", title_justify="left")
    for col in ("stage", "wave", "stacks", "outcome", "detail"):
        t.add_column(col, overflow="fold")
    for r in rows:
        style = OUTCOME_STYLE.get(r["outcome"], "")
        t.add_row(Text(r["stage"]), Text(r["wave"]), Text(r["stacks"]), Text(r["outcome"], style=style), Text(r.get("detail", "")))
    return t


def print_summary(version: str, rows: list[dict[str, str]], console: Console | None = None) -> None:
    (console or Console(stderr=True, highlight=False, emoji=False)).print(summary_table(version, rows))
