"""Deploying a release to a stack, behind one small interface.

Contract of :class:`Deployer`: ``stack_config(stack)`` is the stack's current non-secret
config (``namespace:key`` → string); ``preview(stack, applied)`` and ``up(stack, applied)``
first make the stack's non-secret config exactly ``applied.config`` (keys outside it are
removed, secrets are left alone), then preview / update; ``up`` returns the stack outputs.
Failures raise :class:`DeployError` with one line of cause.

* :class:`AutomationDeployer` drives the real Pulumi CLI through the Automation API
  (``pulumi.automation``), in the repository's project directory.
* :class:`LocalDeployer` records applies in memory, optionally in a JSON file so that it
  survives a killed process; failures and outputs are configurable (tests, dry runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleetprof.release.pipeline import Release

IMAGE_KEY = "fleetprof:imageUri"


class DeployError(RuntimeError):
    """A preview or update failed."""


@dataclass(frozen=True)
class Applied:
    """What a stack runs: the release's artefact plus the complete stack config."""

    version: str
    image: str
    wheel_sha256: str
    config: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config": dict(self.config)}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Applied:
        return Applied(d["version"], d["image"], d.get("wheel_sha256", ""), dict(d.get("config") or {}))

    @staticmethod
    def of(release: Release, base_config: Mapping[str, str]) -> Applied:
        """``release`` on a stack whose current config is ``base_config``."""
        config = {**base_config, **release.config, IMAGE_KEY: release.image}
        return Applied(release.version, release.image, release.wheel_sha256, config)


@dataclass(frozen=True)
class PreviewResult:
    changes: Mapping[str, int]
    text: str = ""


class Deployer(Protocol):
    def stack_config(self, stack: str) -> dict[str, str]: ...

    def preview(self, stack: str, applied: Applied) -> PreviewResult: ...

    def up(self, stack: str, applied: Applied) -> dict[str, Any]: ...


class AutomationDeployer:
    """Pulumi through the Automation API (module contract); ``pulumi_root`` selects a CLI."""

    def __init__(self, work_dir: str | Path, pulumi_root: str | None = None, log: Callable[[str], Any] | None = None) -> None:
        self.work_dir = str(work_dir)
        self.pulumi_root = pulumi_root
        self.log = log

    def _stack(self, name: str) -> Any:
        from pulumi import automation as auto

        try:
            cmd = auto.PulumiCommand(root=self.pulumi_root, skip_version_check=True) if self.pulumi_root else None
            opts = auto.LocalWorkspaceOptions(pulumi_command=cmd) if cmd else None
            return auto.select_stack(stack_name=name, work_dir=self.work_dir, opts=opts)
        except (auto.CommandError, RuntimeError, OSError) as e:
            raise DeployError(f"pulumi: cannot select stack {name}: {_line(e)}") from None

    def stack_config(self, stack: str) -> dict[str, str]:
        from pulumi import automation as auto

        try:
            return {k: v.value for k, v in self._stack(stack).get_all_config().items() if not v.secret}
        except (auto.CommandError, RuntimeError) as e:
            raise DeployError(f"pulumi config of {stack}: {_line(e)}") from None

    def _configure(self, st: Any, applied: Applied) -> None:
        from pulumi import automation as auto

        current = st.get_all_config()
        stale = [k for k, v in current.items() if not v.secret and k not in applied.config]
        if stale:
            st.remove_all_config(stale)
        st.set_all_config({k: auto.ConfigValue(value=v) for k, v in applied.config.items()})

    def preview(self, stack: str, applied: Applied) -> PreviewResult:
        from pulumi import automation as auto

        st = self._stack(stack)
        try:
            self._configure(st, applied)
            res = st.preview(diff=True, color="never", on_output=self.log)
        except (auto.CommandError, RuntimeError) as e:
            raise DeployError(f"pulumi preview of {stack}: {_line(e)}") from None
        return PreviewResult(dict(res.change_summary or {}), res.stdout or "")

    def up(self, stack: str, applied: Applied) -> dict[str, Any]:
        from pulumi import automation as auto

        st = self._stack(stack)
        try:
            self._configure(st, applied)
            res = st.up(color="never", on_output=self.log, message=f"fleetprof release {applied.version}")
        except (auto.CommandError, RuntimeError) as e:
            raise DeployError(f"pulumi up of {stack}: {_line(e)}") from None
        return {k: v.value for k, v in res.outputs.items()}


def _line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower()]
    return (errs or lines or [type(e).__name__])[-1][:500]


@dataclass
class LocalDeployer:
    """Applies recorded in memory (and in ``path`` when given); see the module docstring.

    ``stacks`` maps a stack to ``{"config": {...}, "outputs": {...}}``; ``fail`` maps
    ``"up:<stack>"`` / ``"preview:<stack>"`` to an error message (``"up:<stack>@<version>"``
    fails only that version).
    """

    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None

    @staticmethod
    def load(path: str | Path) -> LocalDeployer:
        p = Path(path)
        data = json.loads(p.read_text()) if p.exists() else {}
        return LocalDeployer(data.get("stacks", {}), data.get("fail", {}), data.get("applied", []), p)

    def save(self) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"stacks": self.stacks, "fail": self.fail, "applied": self.applied}, indent=1))
            tmp.replace(self.path)

    def _check(self, op: str, stack: str, version: str) -> None:
        if stack not in self.stacks:
            raise DeployError(f"no stack named {stack!r}")
        msg = self.fail.get(f"{op}:{stack}@{version}") or self.fail.get(f"{op}:{stack}")
        if msg:
            raise DeployError(f"{op} of {stack}: {msg}")

    def stack_config(self, stack: str) -> dict[str, str]:
        self._check("config", stack, "")
        return dict(self.stacks[stack].get("config") or {})

    def preview(self, stack: str, applied: Applied) -> PreviewResult:
        self._check("preview", stack, applied.version)
        current = self.stacks[stack].get("config") or {}
        changed = sorted(k for k in set(current) | set(applied.config) if current.get(k) != applied.config.get(k))
        text = "".join(f"~ {k}: {current.get(k)!r} -> {applied.config.get(k)!r}\n" for k in changed)
        return PreviewResult({"update": len(changed), "same": len(set(current) - set(changed))}, text)

    def up(self, stack: str, applied: Applied) -> dict[str, Any]:
        self._check("up", stack, applied.version)
        self.stacks[stack]["config"] = dict(applied.config)
        self.applied.append({"stack": stack, **applied.to_dict()})
        self.save()
        return {"image": applied.image, **(self.stacks[stack].get("outputs") or {})}

    def versions(self, stack: str) -> list[str]:
        """The versions applied to ``stack``, in order (one entry per ``up``)."""
        return [a["version"] for a in self.applied if a["stack"] == stack]
