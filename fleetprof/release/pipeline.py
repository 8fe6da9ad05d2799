"""The pipeline file (``pipeline.yaml``) and releases.

Contract of :func:`load_pipeline`: the YAML document has ``state``, optional ``defaults``,
optional ``policy_command`` and a non-empty ``stages`` list; each stage has a ``name``, a
non-empty ``waves`` list and any wave setting; each wave has a ``name``, a non-empty
``stacks`` list and any wave setting. A wave's settings are ``defaults`` overlaid by its
stage's, overlaid by its own (:data:`WAVE_SETTINGS`). Unknown keys, duplicate wave names,
a stack in two waves, bad times/dates and unknown approval workflows are
:class:`PipelineError` with the offending path. Waves run in file order.

A :class:`Release` is what a wave deploys: ``version``, ``image`` pinned by digest
(``<repository>@sha256:<64 hex>``), ``wheel_sha256`` and extra stack ``config``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

IMAGE_DIGEST_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
APPROVALS = ("smoke", "load")
DEFAULT_POLICY_COMMAND = ("{python}", "-m", "policies.offline", "--stack", "{stack}")
DEFAULT_ALARMS = ("observability-", "ingest-deploy-5xx", "ray-head-recover")


class PipelineError(ValueError):
    """The pipeline file or a release manifest is invalid (message names the path)."""


@dataclass(frozen=True)
class TimeWindow:
    """Deploys allowed on ``days`` between ``start`` and ``end`` (local to ``tz``)."""

    days: tuple[str, ...]
    start: dt.time
    end: dt.time
    tz: str = "UTC"

    def allows(self, when: dt.datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.tz))
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


@dataclass(frozen=True)
class Blackout:
    """No deploys from ``start`` to ``end`` (dates, inclusive, in ``tz``)."""

    start: dt.date
    end: dt.date
    reason: str = ""
    tz: str = "UTC"

    def covers(self, when: dt.datetime) -> bool:
        return self.start <= when.astimezone(ZoneInfo(self.tz)).date() <= self.end


@dataclass(frozen=True)
class ProfileBake:
    """Compare the new version's profiles with the previous version's (regression gate)."""

    service: str
    profile_types: tuple[str, ...] = (
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        "memory:alloc_space:bytes:space:bytes",
    )
    threshold_pp: float = 2.0
    min_share_pct: float = 1.0
    min_total: int = 1
    tenant: str = ""


@dataclass(frozen=True)
class Wave:
    """One deploy unit: its stacks go out, are approved and bake together."""

    name: str
    stage: str
    stacks: tuple[str, ...]
    approvals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    alarms: tuple[str, ...] = DEFAULT_ALARMS
    bake_s: float = 1800.0
    poll_s: float = 60.0
    min_datapoints: int = 3
    promotion: str = "automatic"
    time_windows: tuple[TimeWindow, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    profile_bake: ProfileBake | None = None
    region: str = ""
    url: str = ""


@dataclass(frozen=True)
class StateConfig:
    bucket: str
    table: str
    prefix: str = "fleetprof-release/"
    lock_lease_s: float = 900.0


@dataclass(frozen=True)
class Pipeline:
    state: StateConfig
    waves: tuple[Wave, ...]
    policy_command: tuple[str, ...] = DEFAULT_POLICY_COMMAND

    def wave(self, name: str) -> Wave:
        for w in self.waves:
            if w.name == name:
                return w
        raise PipelineError(f"no wave named {name!r} (waves: {', '.join(w.name for w in self.waves)})")

    @property
    def stacks(self) -> list[str]:
        return [s for w in self.waves for s in w.stacks]


@dataclass(frozen=True)
class Release:
    """An artefact (image digest + wheel digest) and the extra config it deploys with."""

    version: str
    image: str
    wheel_sha256: str = ""
    config: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config": dict(self.config)}


def release_from_dict(data: Mapping[str, Any], where: str = "release") -> Release:
    """A validated :class:`Release` (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise PipelineError(f"{where}: expected an object")
    _only(data, {"version", "image", "wheel_sha256", "config"}, where)
    version, image = data.get("version"), data.get("image")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise PipelineError(f"{where}.version: expected 1-64 of [A-Za-z0-9._+-], got {version!r}")
    if not isinstance(image, str) or not IMAGE_DIGEST_RE.match(image):
        raise PipelineError(f"{where}.image: must be pinned by digest (<repository>@sha256:<64 hex>), got {image!r}")
    wheel = data.get("wheel_sha256", "")
    if not isinstance(wheel, str) or (wheel and not re.fullmatch(r"[0-9a-f]{64}", wheel)):
        raise PipelineError(f"{where}.wheel_sha256: expected 64 hex digits, got {wheel!r}")
    config = data.get("config") or {}
    if not isinstance(config, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
        raise PipelineError(f"{where}.config: expected a map of strings to strings")
    return Release(version, image, wheel, dict(config))


# ----------------------------------------------------------------------------- loading

WAVE_SETTINGS = {
    "approvals", "alarms", "bake_s", "poll_s", "min_datapoints", "promotion", "time_windows",
    "blackouts", "profile_bake", "region", "url",
}


def load_pipeline(path: str | Path, known_stacks: Sequence[str] | None = None) -> Pipeline:
    """Read and validate ``path``; ``known_stacks`` (if given) must contain every stack."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PipelineError(f"cannot read pipeline file {path}: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PipelineError(f"{path}: not valid YAML: {e}") from None
    return parse_pipeline(doc, known_stacks)


def parse_pipeline(doc: Any, known_stacks: Sequence[str] | None = None) -> Pipeline:
    """Validate a parsed pipeline document (see the module docstring)."""
    if not isinstance(doc, Mapping):
        raise PipelineError("pipeline: expected a mapping at the top level")
    _only(doc, {"version", "state", "defaults", "stages", "policy_command"}, "pipeline")
    state = _state(doc.get("state"))
    defaults = doc.get("defaults") or {}
    _settings_only(defaults, "defaults")
    stages = doc.get("stages")
    if not isinstance(stages, list) or not stages:
        raise PipelineError("stages: expected a non-empty list")
    waves: list[Wave] = []
    for i, stage in enumerate(stages):
        waves += _stage(stage, defaults, f"stages[{i}]")
    _unique([w.name for w in waves], "wave name")
    _unique([s for w in waves for s in w.stacks], "stack (a stack belongs to one wave)")
    if known_stacks is not None:
        for w in waves:
            missing = [s for s in w.stacks if s not in known_stacks]
            if missing:
                raise PipelineError(f"wave {w.name}: unknown stack(s) {missing} (known: {sorted(known_stacks)})")
    cmd = doc.get("policy_command", list(DEFAULT_POLICY_COMMAND))
    if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise PipelineError("policy_command: expected a non-empty list of strings")
    return Pipeline(state, tuple(waves), tuple(cmd))


def _state(raw: Any) -> StateConfig:
    if not isinstance(raw, Mapping):
        raise PipelineError("state: expected a mapping with bucket and table")
    _only(raw, {"bucket", "table", "prefix", "lock_lease_s"}, "state")
    for key in ("bucket", "table"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise PipelineError(f"state.{key}: expected a non-empty string")
    prefix = str(raw.get("prefix", "fleetprof-release/"))
    lease = _number(raw.get("lock_lease_s", 900), "state.lock_lease_s", lo=1)
    return StateConfig(raw["bucket"], raw["table"], prefix if prefix.endswith("/") else prefix + "/", lease)


def _stage(stage: Any, defaults: Mapping[str, Any], where: str) -> list[Wave]:
    if not isinstance(stage, Mapping):
        raise PipelineError(f"{where}: expected a mapping")
    _only(stage, {"name", "waves", *WAVE_SETTINGS}, where)
    name = _name(stage.get("name"), f"{where}.name")
    raw_waves = stage.get("waves")
    if not isinstance(raw_waves, list) or not raw_waves:
        raise PipelineError(f"{where}.waves: expected a non-empty list")
    stage_settings = {k: v for k, v in stage.items() if k in WAVE_SETTINGS}
    out = []
    for j, w in enumerate(raw_waves):
        ww = f"{where}.waves[{j}]"
        if not isinstance(w, Mapping):
            raise PipelineError(f"{ww}: expected a mapping")
        _only(w, {"name", "stacks", *WAVE_SETTINGS}, ww)
        stacks = w.get("stacks")
        if not isinstance(stacks, list) or not stacks or not all(isinstance(s, str) and s for s in stacks):
            raise PipelineError(f"{ww}.stacks: expected a non-empty list of stack names")
        merged = {**defaults, **stage_settings, **{k: v for k, v in w.items() if k in WAVE_SETTINGS}}
        out.append(_wave(_name(w.get("name"), f"{ww}.name"), name, tuple(stacks), merged, ww))
    return out


def _wave(name: str, stage: str, stacks: tuple[str, ...], s: Mapping[str, Any], where: str) -> Wave:
    approvals = s.get("approvals") or {}
    if not isinstance(approvals, Mapping):
        raise PipelineError(f"{where}.approvals: expected a mapping of workflow name to settings")
    for k, v in approvals.items():
        if k not in APPROVALS:
            raise PipelineError(f"{where}.approvals: unknown workflow {k!r} (known: {', '.join(APPROVALS)})")
        if v is not None and not isinstance(v, Mapping):
            raise PipelineError(f"{where}.approvals.{k}: expected a mapping")
    alarms = s.get("alarms", list(DEFAULT_ALARMS))
    if not isinstance(alarms, list) or not all(isinstance(a, str) and a for a in alarms):
        raise PipelineError(f"{where}.alarms: expected a list of alarm name prefixes")
    promotion = s.get("promotion", "automatic")
    if promotion not in ("automatic", "manual"):
        raise PipelineError(f"{where}.promotion: expected automatic or manual, got {promotion!r}")
    return Wave(
        name=name,
        stage=stage,
        stacks=stacks,
        approvals={k: dict(v or {}) for k, v in approvals.items()},
        alarms=tuple(alarms),
        bake_s=_number(s.get("bake_s", 1800), f"{where}.bake_s", lo=0),
        poll_s=_number(s.get("poll_s", 60), f"{where}.poll_s", lo=0.001),
        min_datapoints=int(_number(s.get("min_datapoints", 3), f"{where}.min_datapoints", lo=0)),
        promotion=promotion,
        time_windows=tuple(_window(w, f"{where}.time_windows[{i}]") for i, w in enumerate(_list(s, "time_windows", where))),
        blackouts=tuple(_blackout(b, f"{where}.blackouts[{i}]") for i, b in enumerate(_list(s, "blackouts", where))),
        profile_bake=_profile_bake(s.get("profile_bake"), f"{where}.profile_bake"),
        region=str(s.get("region") or ""),
        url=str(s.get("url") or ""),
    )


def _window(raw: Any, where: str) -> TimeWindow:
    if not isinstance(raw, Mapping):
        raise PipelineError(f"{where}: expected a mapping with days, start, end")
    _only(raw, {"days", "start", "end", "tz"}, where)
    days = raw.get("days", list(DAYS))
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise PipelineError(f"{where}.days: expected a list of {', '.join(DAYS)}")
    tz = _tz(raw.get("tz", "UTC"), f"{where}.tz")
    start, end = _time(raw.get("start"), f"{where}.start"), _time(raw.get("end"), f"{where}.end")
    if end <= start:
        raise PipelineError(f"{where}: end must be after start")
    return TimeWindow(tuple(days), start, end, tz)


def _blackout(raw: Any, where: str) -> Blackout:
    if not isinstance(raw, Mapping):
        raise PipelineError(f"{where}: expected a mapping with start, end, reason")
    _only(raw, {"start", "end", "reason", "tz"}, where)
    start = _date(raw.get("start"), f"{where}.start")
    end = _date(raw.get("end", raw.get("start")), f"{where}.end")
    if end < start:
        raise PipelineError(f"{where}: end is before start")
    return Blackout(start, end, str(raw.get("reason") or ""), _tz(raw.get("tz", "UTC"), f"{where}.tz"))


def _profile_bake(raw: Any, where: str) -> ProfileBake | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("service"), str) or not raw["service"]:
        raise PipelineError(f"{where}: expected a mapping with a service name")
    _only(raw, {"service", "profile_types", "threshold_pp", "min_share_pct", "min_total", "tenant"}, where)
    types = raw.get("profile_types", list(ProfileBake.profile_types))
    if not isinstance(types, list) or not types or not all(isinstance(t, str) and t.count(":") == 4 for t in types):
        raise PipelineError(f"{where}.profile_types: expected profile type ids (name:type:unit:period_type:period_unit)")
    return ProfileBake(
        service=raw["service"],
        profile_types=tuple(types),
        threshold_pp=_number(raw.get("threshold_pp", 2.0), f"{where}.threshold_pp", lo=0),
        min_share_pct=_number(raw.get("min_share_pct", 1.0), f"{where}.min_share_pct", lo=0),
        min_total=int(_number(raw.get("min_total", 1), f"{where}.min_total", lo=0)),
        tenant=str(raw.get("tenant") or ""),
    )


# ----------------------------------------------------------------------------- helpers

def _only(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(str(k) for k in raw if k not in allowed)
    if extra:
        raise PipelineError(f"{where}: unknown key(s) {extra} (allowed: {sorted(allowed)})")


def _settings_only(raw: Any, where: str) -> None:
    if not isinstance(raw, Mapping):
        raise PipelineError(f"{where}: expected a mapping")
    _only(raw, WAVE_SETTINGS, where)


def _list(s: Mapping[str, Any], key: str, where: str) -> list[Any]:
    v = s.get(key) or []
    if not isinstance(v, list):
        raise PipelineError(f"{where}.{key}: expected a list")
    return v


def _name(v: Any, where: str) -> str:
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise PipelineError(f"{where}: expected a lower-case name ([a-z0-9-], up to 63), got {v!r}")
    return v


def _number(v: Any, where: str, lo: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < lo:
        raise PipelineError(f"{where}: expected a number >= {lo:g}, got {v!r}")
    return float(v)


def _time(v: Any, where: str) -> dt.time:
    if isinstance(v, int) and not isinstance(v, bool):  # YAML 1.1 reads 09:00 as sexagesimal 540
        v = f"{v // 60:02d}:{v % 60:02d}"
    if v == "24:00":
        return dt.time.max
    try:
        return dt.time.fromisoformat(str(v))
    except ValueError:
        raise PipelineError(f"{where}: expected HH:MM, got {v!r}") from None


def _date(v: Any, where: str) -> dt.date:
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError:
        raise PipelineError(f"{where}: expected YYYY-MM-DD, got {v!r}") from None


def _tz(v: Any, where: str) -> str:
    try:
        ZoneInfo(str(v))
    except (ZoneInfoNotFoundError, ValueError):
        raise PipelineError(f"{where}: unknown time zone {v!r}") from None
    return str(v)


def _unique(items: list[str], what: str) -> None:
    seen: set[str] = set()
    for x in items:
        if x in seen:
            raise PipelineError(f"duplicate {what}: {x!r}")
        seen.add(x)
