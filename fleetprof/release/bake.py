"""Bake checks: alarms over the bake time, and the new version's profiles.

Contract of :func:`alarm_poll`: one look at the wave's alarms — the names in ALARM, and
whether this poll is a datapoint (at least one alarm exists and none lacks data).

Contract of :func:`profile_bake`: for each configured profile type, the merged profile of
``service_name=<service>, version=<new>`` over the bake window is compared with that of
``version=<previous>`` over a window as long just before the deploy started (the version it
replaces, under the same traffic) through the regression gate
(:func:`fleetprof.compare.regress.regress`). A regression fails the check and names the
functions (``culprits``); a new version with less than ``min_total`` in a type fails too
(no evidence is not a pass); no previous-version profile (a first release) passes with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from fleetprof.release.alarms import stack_alarms
from fleetprof.release.approvals import Verdict, tenant_headers
from fleetprof.release.pipeline import ProfileBake, Wave


@dataclass(frozen=True)
class AlarmPoll:
    alarming: list[str]
    datapoint: bool


def alarm_poll(wave: Wave) -> AlarmPoll:
    """One look at the wave's alarms (module contract)."""
    alarming: list[str] = []
    seen = 0
    missing = 0
    for stack in wave.stacks:
        for a in stack_alarms(wave.alarms, stack, wave.region):
            seen += 1
            if a.state == "ALARM":
                alarming.append(f"{a.name} ({stack}): {a.reason}")
            elif a.state != "OK":
                missing += 1
    return AlarmPoll(alarming, seen > 0 and missing == 0)


def fetch_profile(url: str, cfg: ProfileBake, ptype: str, version: str, start: float, end: float) -> Any:
    """The merged profile of ``version`` in ``[start, end]`` (epoch s), or None when empty."""
    from fleetprof.formats.detect import decode

    query = f'{ptype}{{service_name="{cfg.service}",version="{version}"}}'
    params = {"format": "pprof", "query": query, "from": str(int(start * 1000)), "until": str(int(end * 1000) + 1)}
    with httpx.Client(base_url=url, timeout=60.0) as c:
        r = c.get("/api/v1/export", params=params, headers=tenant_headers(cfg.tenant) if cfg.tenant else {})
    if r.status_code == 404 or not r.content:
        return None
    if r.status_code != 200:
        raise httpx.HTTPError(f"export of {version} answered {r.status_code}: {r.text[:200]}")
    profile = decode(r.content, "pprof")
    return profile if profile.totals()[0] > 0 else None


def profile_bake(url: str, cfg: ProfileBake, new: str, previous: str | None,
                 window: tuple[float, float], base_window: tuple[float, float]) -> Verdict:
    """The profile bake (module contract)."""
    from fleetprof.compare.regress import regress

    culprits: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        for ptype in cfg.profile_types:
            cand = fetch_profile(url, cfg, ptype, new, *window)
            cand_total = int(cand.totals()[0]) if cand is not None else 0
            if cand_total < cfg.min_total:
                return Verdict(False, f"{ptype}: {cand_total} of version {new} in the bake window, below min_total {cfg.min_total}")
            base = fetch_profile(url, cfg, ptype, previous, *base_window) if previous else None
            if base is None:
                notes.append(f"{ptype}: no profile of the previous version {previous or '(none)'}; nothing to compare")
                continue
            report = regress(base, cand, 0, threshold_pp=cfg.threshold_pp, min_share_pct=cfg.min_share_pct)
            for r in report.regressions.iter_rows(named=True):
                culprits.append({"profile_type": ptype, "function": r["function"], "file": r["file"], "kind": r["kind"],
                                 "base_pct": round(r["base_pct"], 2), "cand_pct": round(r["cand_pct"], 2),
                                 "delta_pp": round(r["delta_pp"], 2)})
    except (httpx.HTTPError, ValueError) as e:
        return Verdict(False, f"profile bake against {url}: {e}")
    if culprits:
        names = ", ".join(dict.fromkeys(f"{c['function']} ({c['kind']} {c['delta_pp']:+.1f} pp)" for c in culprits))
        return Verdict(False, f"profile regression of {new} vs {previous}: {names}", {"culprits": culprits, "notes": notes})
    return Verdict(True, f"no profile regression of {new} vs {previous or '(none)'}", {"notes": notes})
