"""Blockers: reasons not to start deploying a wave now.

Contract of :func:`blockers`: an empty list means go. Otherwise one line per reason: the
current time is outside every configured time window (no windows means always open), a
blackout covers today, or a watched alarm of a stack is already in ALARM.
"""

from __future__ import annotations

import datetime as dt

from fleetprof.release.alarms import stack_alarms
from fleetprof.release.pipeline import Wave


def time_blockers(wave: Wave, now: float) -> list[str]:
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    out = []
    if wave.time_windows and not any(w.allows(when) for w in wave.time_windows):
        spans = "; ".join(f"{','.join(w.days)} {w.start:%H:%M}-{w.end:%H:%M} {w.tz}" for w in wave.time_windows)
        out.append(f"outside the deploy windows ({spans}) at {when:%a %Y-%m-%d %H:%M} UTC")
    for b in wave.blackouts:
        if b.covers(when):
            out.append(f"blackout {b.start}..{b.end}" + (f": {b.reason}" if b.reason else ""))
    return out


def alarm_blockers(wave: Wave) -> list[str]:
    out = []
    for stack in wave.stacks:
        for a in stack_alarms(wave.alarms, stack, wave.region):
            if a.state == "ALARM":
                out.append(f"alarm {a.name} of {stack} is in ALARM: {a.reason}")
    return out


def blockers(wave: Wave, now: float) -> list[str]:
    """Every reason not to deploy ``wave`` at ``now`` (module contract)."""
    return time_blockers(wave, now) + alarm_blockers(wave)
