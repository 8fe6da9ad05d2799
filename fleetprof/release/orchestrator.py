"""The release orchestrator: one release through the pipeline's waves, resumably.

Contract of :meth:`Orchestrator.run`, per wave in file order:

1. skipped when every stack already has this version as its last good release; failed
   when a stack rejected this version earlier (it was rolled back there);
2. a manual wave waits (``waiting``) until ``fleetprof release approve`` recorded approval;
3. every stack's lock is taken (``busy`` if another run holds one past ``lock_wait_s``);
4. unless resuming a deploy already done: blockers (``blocked``) → preview + offline policy
   per stack (``failed``, nothing deployed) → ``up`` per stack;
5. approval workflows → bake: alarms polled every ``poll_s`` until ``bake_s`` passed and
   ``min_datapoints`` polls saw every alarm with data (none in ALARM), then the profile bake;
6. ``promoted`` (the applied release becomes each stack's last good), or on any failure
   after a deploy started: every stack re-applies its last good release (artefact + exact
   config), the version is rejected there, and promotion stops (``rolled_back``).

Each completed step is written to the stack's state before the next starts, so a rerun
after a crash continues after the last completed step and never re-runs an ``up`` that
finished. Locks are released at the end of a wave; a crashed run's locks expire with their
lease. Every decision is an event (:mod:`fleetprof.release.events`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetprof.release import approvals as wf
from fleetprof.release.bake import alarm_poll, profile_bake
from fleetprof.release.blockers import blockers
from fleetprof.release.clock import Clock
from fleetprof.release.deployer import Applied, Deployer, DeployError
from fleetprof.release.events import EventLog
from fleetprof.release.pipeline import Pipeline, Release, Wave
from fleetprof.release.state import StackState, StateStore

DEPLOYED_STEPS = ("deployed", "approved")
EXIT = {"promoted": 0, "skipped": 0, "waiting": 0, "busy": 3, "blocked": 3, "rolled_back": 1, "failed": 1}
MAX_BAKE_FACTOR = 3.0
"""A bake that has not seen ``min_datapoints`` after this many bake times fails."""


class StopWave(Exception):
    """Ends a wave with ``outcome`` (rollback already done when needed)."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class RunResult:
    rows: list[dict[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((EXIT.get(r["outcome"], 0) for r in self.rows), default=0)


def run_policy(cmd: list[str], repo: Path) -> tuple[int, str]:
    """Run the offline policy check; ``(exit status, output tail)``."""
    try:
        done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return done.returncode, (done.stdout + done.stderr)[-2000:]


@dataclass
class Orchestrator:
    pipeline: Pipeline
    state: StateStore
    deployer: Deployer
    clock: Clock
    events: EventLog
    repo: Path = Path(".")
    owner: str = ""
    lock_wait_s: float = 0.0
    policy: Callable[[list[str], Path], tuple[int, str]] = run_policy
    after_step: Callable[[str, str], None] | None = None
    """Called after each completed step with (step, wave); a test's crash point."""

    def run(self, release: Release) -> RunResult:
        """Carry ``release`` through the waves (module contract)."""
        owner = self.owner or self.events.run_id
        self.owner = owner
        self.state.put_release(release)
        self.events.emit("run.start", f"release {release.version} ({release.image})", waves=[w.name for w in self.pipeline.waves])
        result = RunResult()
        stopped = False
        for w in self.pipeline.waves:
            row = {"stage": w.stage, "wave": w.name, "stacks": ", ".join(w.stacks)}
            if stopped:
                result.rows.append({**row, "outcome": "not_reached", "detail": ""})
                continue
            try:
                outcome, detail = self._wave(w, release)
            except StopWave as e:
                outcome, detail = e.outcome, str(e)
            result.rows.append({**row, "outcome": outcome, "detail": detail})
            stopped = outcome not in ("promoted", "skipped")
        self.events.emit("run.end", f"exit {result.exit_code}", outcomes={r["wave"]: r["outcome"] for r in result.rows})
        return result

    # ------------------------------------------------------------------ one wave
    def _wave(self, w: Wave, release: Release) -> tuple[str, str]:
        v = release.version
        states = {s: self.state.stack_state(s) for s in w.stacks}
        if all((st.last_good or {}).get("version") == v and not st.current for st in states.values()):
            self.events.emit("wave.skipped", "already promoted", wave=w.name)
            return "skipped", "already promoted"
        rejected = [s for s, st in states.items() if v in st.rejected]
        if rejected:
            self.events.emit("wave.rejected", f"{v} was rolled back from {rejected} earlier", wave=w.name)
            return "failed", f"rejected earlier on {', '.join(rejected)}"
        resuming = any((st.current or {}).get("version") == v for st in states.values())
        if w.promotion == "manual" and not resuming and not self.state.approved(w.name, v):
            self.events.emit("promotion.awaiting_approval", f"run `fleetprof release approve {w.name} {v}`", wave=w.name)
            return "waiting", "manual promotion: awaiting approval"
        held = self._lock(w, v)
        try:
            return self._locked(w, release)
        finally:
            for s in held:
                self.state.release_lock(s, self.owner)

    def _lock(self, w: Wave, version: str) -> list[str]:
        held: list[str] = []
        deadline = self.clock.now() + self.lock_wait_s
        for s in sorted(w.stacks):
            while not self.state.acquire(s, self.owner, version):
                info = self.state.lock_info(s)
                if self.clock.now() >= deadline:
                    for h in held:
                        self.state.release_lock(h, self.owner)
                    holder = f"{info.owner} ({info.version}) until {info.expires_at:.0f}" if info else "another run"
                    self.events.emit("lock.busy", f"{s} is locked by {holder}", wave=w.name, stack=s)
                    raise StopWave("busy", f"{s} locked by {info.version if info else 'another run'}")
                self.clock.sleep(min(5.0, max(0.1, deadline - self.clock.now())))
            held.append(s)
            self.events.emit("lock.acquired", wave=w.name, stack=s)
        return held

    def _locked(self, w: Wave, release: Release) -> tuple[str, str]:
        v = release.version
        states = {s: self.state.stack_state(s) for s in w.stacks}
        if all(_done(st, v) for st in states.values()):
            steps = sorted({st.current["step"] for st in states.values()})
            self.events.emit("wave.resume", f"resuming after step {'/'.join(steps)}", wave=w.name)
        else:
            self._deploy(w, release, states)
        self._approvals(w, release, states)
        self._bake(w, release, states)
        for st in states.values():
            st.last_good = {**st.current["applied"], "promoted_at": self.clock.now()}
            st.current = None
            self.state.save_stack_state(st)
        self.events.emit("wave.promoted", f"{v} is the last good release of {', '.join(w.stacks)}", wave=w.name)
        self._step("promoted", w)
        return "promoted", "approvals and bake passed"

    def _step(self, step: str, w: Wave) -> None:
        if self.after_step is not None:
            self.after_step(step, w.name)

    # ------------------------------------------------------------------ deploy
    def _deploy(self, w: Wave, release: Release, states: dict[str, StackState]) -> None:
        found = blockers(w, self.clock.now())
        if found:
            for b in found:
                self.events.emit("blocker", b, wave=w.name)
            raise StopWave("blocked", found[0])
        applied: dict[str, Applied] = {}
        for s in w.stacks:
            try:
                applied[s] = Applied.of(release, self.deployer.stack_config(s))
                pv = self.deployer.preview(s, applied[s])
            except DeployError as e:
                self.events.emit("preview.failed", str(e), wave=w.name, stack=s)
                raise StopWave("failed", f"preview of {s}: {e}") from None
            self.events.emit("preview.done", wave=w.name, stack=s, changes=dict(pv.changes))
            cmd = [c.format(python=sys.executable, stack=s) for c in self.pipeline.policy_command]
            rc, out = self.policy(cmd, self.repo)
            if rc != 0:
                self.events.emit("policy.failed", out.strip().splitlines()[-1] if out.strip() else f"exit {rc}", wave=w.name, stack=s)
                raise StopWave("failed", f"policy check of {s} failed (exit {rc})")
            self.events.emit("policy.passed", wave=w.name, stack=s)
        self._step("previewed", w)
        for s in w.stacks:
            st = states[s]
            if _done(st, release.version):
                self.events.emit("deploy.skipped", "already deployed by an earlier run", wave=w.name, stack=s)
                continue
            st.current = {"version": release.version, "step": "deploying", "run": self.events.run_id,
                          "applied": applied[s].to_dict(), "started_at": self.clock.now()}
            self.state.save_stack_state(st)
            self.events.emit("deploy.start", f"up {release.image}", wave=w.name, stack=s)
            try:
                outputs = self.deployer.up(s, applied[s])
            except DeployError as e:
                self.events.emit("deploy.failed", str(e), wave=w.name, stack=s)
                self._rollback(w, release, states, f"up of {s} failed: {e}")
            st.current = {**st.current, "step": "deployed", "url": w.url or str(outputs.get("url") or "")}
            self.state.save_stack_state(st)
            self.events.emit("deploy.done", wave=w.name, stack=s, url=st.current["url"])
            self._step("deployed", w)

    # ------------------------------------------------------------------ approvals
    def _approvals(self, w: Wave, release: Release, states: dict[str, StackState]) -> None:
        if all(st.current["step"] == "approved" for st in states.values()):
            return
        for name, params in w.approvals.items():
            for s, st in states.items():
                url = st.current.get("url", "")
                if not url:
                    verdict = wf.Verdict(False, f"stack {s} exports no url to run {name} against")
                elif name == "smoke":
                    verdict = wf.smoke(url, params, release.version)
                else:
                    verdict = wf.load(url, params, self.repo)
                kind = "approval.passed" if verdict.ok else "approval.failed"
                self.events.emit(kind, verdict.summary, wave=w.name, stack=s, workflow=name, **dict(verdict.detail))
                if not verdict.ok:
                    self._rollback(w, release, states, f"{name} on {s}: {verdict.summary}")
        now = self.clock.now()
        for st in states.values():
            st.current = {**st.current, "step": "approved", "bake_started_at": now, "datapoints": 0}
            self.state.save_stack_state(st)
        self.events.emit("bake.start", f"bake {w.bake_s:g} s, at least {w.min_datapoints} datapoints", wave=w.name)
        self._step("approved", w)

    # ------------------------------------------------------------------ bake
    def _bake(self, w: Wave, release: Release, states: dict[str, StackState]) -> None:
        first = next(iter(states.values()))
        start = float(first.current["bake_started_at"])
        datapoints = int(first.current.get("datapoints", 0))
        while True:
            for s in w.stacks:
                if not self.state.renew(s, self.owner):
                    self.events.emit("lock.lost", wave=w.name, stack=s)
                    raise StopWave("failed", f"lost the lock of {s} during bake")
            poll = alarm_poll(w)
            if poll.alarming:
                self.events.emit("bake.alarm", "; ".join(poll.alarming), wave=w.name, alarms=poll.alarming)
                self._rollback(w, release, states, f"alarm during bake: {poll.alarming[0]}")
            datapoints += int(poll.datapoint)
            for st in states.values():
                st.current = {**st.current, "datapoints": datapoints}
                self.state.save_stack_state(st)
            elapsed = self.clock.now() - start
            if elapsed >= w.bake_s and datapoints >= w.min_datapoints:
                break
            if elapsed >= max(w.bake_s * MAX_BAKE_FACTOR, w.bake_s + w.poll_s * w.min_datapoints * 2):
                self.events.emit("bake.no_data", f"{datapoints} of {w.min_datapoints} datapoints", wave=w.name)
                self._rollback(w, release, states, "not enough alarm datapoints during bake")
            self.clock.sleep(w.poll_s)
        self.events.emit("bake.alarms_ok", f"{datapoints} datapoints over {self.clock.now() - start:.0f} s", wave=w.name)
        if w.profile_bake is not None:
            self._profile_bake(w, release, states, start)

    def _profile_bake(self, w: Wave, release: Release, states: dict[str, StackState], start: float) -> None:
        assert w.profile_bake is not None
        for s, st in states.items():
            previous = (st.last_good or {}).get("version")
            now, deployed_at = self.clock.now(), float(st.current["started_at"])
            base = (deployed_at - (now - start), deployed_at)
            verdict = profile_bake(st.current.get("url", ""), w.profile_bake, release.version, previous, (start, now), base)
            kind = "bake.profiles_ok" if verdict.ok else "bake.profile_regression"
            self.events.emit(kind, verdict.summary, wave=w.name, stack=s, **dict(verdict.detail))
            if not verdict.ok:
                self._rollback(w, release, states, verdict.summary)

    # ------------------------------------------------------------------ rollback
    def _rollback(self, w: Wave, release: Release, states: dict[str, StackState], reason: str) -> None:
        """Re-apply each stack's last good release, reject the version, stop (raises)."""
        self.events.emit("rollback.start", reason, wave=w.name)
        failed = []
        for s, st in states.items():
            good = st.last_good
            touched = (st.current or {}).get("version") == release.version
            if not touched:
                self.events.emit("rollback.not_needed", "not deployed by this release", wave=w.name, stack=s)
            elif good and good.get("version") != release.version:
                try:
                    self.deployer.up(s, Applied.from_dict(good))
                    self.events.emit("rollback.done", f"re-applied {good['version']} ({good['image']})", wave=w.name, stack=s)
                except DeployError as e:
                    failed.append(s)
                    self.events.emit("rollback.failed", str(e), wave=w.name, stack=s)
            else:
                self.events.emit("rollback.none", "no known-good release recorded; stack left as is", wave=w.name, stack=s)
            st.current = None
            if release.version not in st.rejected:
                st.rejected.append(release.version)
            self.state.save_stack_state(st)
        self.events.emit("promotion.stopped", f"{release.version} stops at {w.name}", wave=w.name)
        raise StopWave("failed" if failed else "rolled_back", reason)


def _done(st: StackState, version: str) -> bool:
    """Whether ``version``'s ``up`` finished on this stack (an in-flight record past deploying)."""
    return (st.current or {}).get("version") == version and st.current.get("step") in DEPLOYED_STEPS


def applied_summary(st: StackState) -> dict[str, Any]:
    """``version``/``image`` of a stack's last good and in-flight release (for ``status``)."""
    cur = st.current or {}
    return {"stack": st.stack, "last_good": (st.last_good or {}).get("version", ""),
            "image": (st.last_good or {}).get("image", ""), "in_flight": cur.get("version", ""),
            "step": cur.get("step", ""), "rejected": ", ".join(st.rejected)}
