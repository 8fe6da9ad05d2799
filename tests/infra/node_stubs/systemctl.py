"""``systemctl`` on a sandboxed node: unit files in /etc/systemd/system, run as systemd would.

Supported: ``daemon-reload``, ``enable [--now] UNIT...``, ``start UNIT...``, ``is-active UNIT``.
A unit's command runs with the environment systemd gives it: ``EnvironmentFile=`` parsed,
``Environment=`` applied, ``HOME``/``USER``/``LOGNAME``/``SHELL`` of ``User=`` (privileges
dropped with ``setpriv``), systemd's default ``PATH``, and nothing inherited except the
instance credentials and endpoint (:data:`INSTANCE_ENV`, which EC2 provides through IMDS).
``ExecStart=`` is split into words (no shell), specifiers ``%i``/``%n``/``%%`` expanded.

* ``Type=oneshot``: ``ExecStart`` then every ``ExecStartPost`` in order, waited for; the first
  failure fails the unit, starts its ``OnFailure=`` units and makes ``systemctl start`` exit 1.
* Otherwise (``Type=simple``): started in the background under a supervisor honouring
  ``Restart=always``/``RestartSec=``; output goes to ``<state>/logs/<unit>.log``.
* ``enable --now X.timer`` activates the timer (recorded); it runs nothing by itself.

State (enabled and active units, one JSON file) lives in ``$SYSTEMCTL_STUB_STATE``.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
import sys
import time
from pathlib import Path

UNIT_DIR = Path("/etc/systemd/system")
STATE = Path(os.environ.get("SYSTEMCTL_STUB_STATE", "/run/systemctl-stub"))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
INSTANCE_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> ordered (key, value) pairs (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
        elif "=" in line:
            key, value = line.split("=", 1)
            sections.setdefault(current, []).append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def unit_path(name: str) -> tuple[Path, str]:
    """The file of a unit and its instance (``a@x.service`` -> ``a@.service``, ``x``)."""
    path = UNIT_DIR / name
    if path.exists() or "@" not in name:
        return path, ""
    prefix, rest = name.split("@", 1)
    instance, _, suffix = rest.rpartition(".")
    return UNIT_DIR / f"{prefix}@.{suffix}", instance


def load(name: str) -> tuple[dict[str, list[tuple[str, str]]], str]:
    path, instance = unit_path(name)
    if not path.exists():
        raise SystemExit(f"Failed to start {name}: Unit {name} not found.")
    return parse_unit(path.read_text()), instance


def read_env_file(path: str) -> dict[str, str]:
    optional = path.startswith("-")
    p = Path(path.lstrip("-"))
    if not p.exists():
        if optional:
            return {}
        raise SystemExit(f"EnvironmentFile {p} not found")
    env = {}
    for raw in p.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def expand(text: str, name: str, instance: str) -> str:
    return text.replace("%%", "\0").replace("%i", instance).replace("%n", name).replace("\0", "%")


def unit_env(unit: dict[str, list[tuple[str, str]]], name: str, instance: str) -> tuple[dict[str, str], list[str]]:
    """The environment and the privilege-dropping prefix of a unit's commands."""
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "INVOCATION_ID": os.urandom(16).hex()}
    env.update({k: os.environ[k] for k in INSTANCE_ENV if k in os.environ})
    prefix: list[str] = []
    user = (values(unit, "Service", "User") or [""])[-1]
    if user:
        pw = pwd.getpwnam(user)
        env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user, SHELL=pw.pw_shell or "/bin/sh")
        prefix = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    for path in values(unit, "Service", "EnvironmentFile"):
        env.update(read_env_file(path))
    for assignment in values(unit, "Service", "Environment"):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    return env, prefix


def command(line: str, name: str, instance: str, env: dict[str, str]) -> list[str]:
    """systemd's word splitting; the executable must be an absolute path or found on PATH."""
    words = shlex.split(expand(line.lstrip("-@:+!"), name, instance))
    if not words[0].startswith("/"):
        for d in env["PATH"].split(":"):
            if os.access(f"{d}/{words[0]}", os.X_OK):
                return [f"{d}/{words[0]}", *words[1:]]
        raise SystemExit(f"{name}: executable {words[0]!r} not found on PATH")
    return words


def state() -> dict:
    path = STATE / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"enabled": [], "active": [], "runs": []}


def save(st: dict) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    tmp = STATE / "state.json.tmp"
    tmp.write_text(json.dumps(st, indent=1))
    tmp.replace(STATE / "state.json")


def record(key: str, item) -> None:
    st = state()
    if item not in st[key]:
        st[key].append(item)
    save(st)


def log_file(name: str):
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    return open(STATE / "logs" / f"{name}.log", "ab", buffering=0)


def run_oneshot(name: str, unit, instance: str) -> int:
    env, prefix = unit_env(unit, name, instance)
    rc = 0
    with log_file(name) as log:
        for key in ("ExecStart", "ExecStartPost"):
            for line in values(unit, "Service", key):
                argv = prefix + command(line, name, instance, env)
                log.write(f"--- {key}: {shlex.join(argv)}\n".encode())
                rc = subprocess.run(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL).returncode
                if rc != 0:
                    break
            if rc != 0:
                break
    st = state()
    st["runs"].append({"unit": name, "rc": rc, "time": time.time()})
    save(st)
    if rc != 0:
        for failed in values(unit, "Unit", "OnFailure"):
            for other in failed.split():
                start(expand(other, name, instance))
        print(f"Job for {name} failed because the control process exited with error code.", file=sys.stderr)
        return 1
    return 0


def supervise(name: str) -> None:
    """Background process of a ``Type=simple`` unit: run, restart as ``Restart=`` says."""
    unit, instance = load(name)
    env, prefix = unit_env(unit, name, instance)
    argv = prefix + command(values(unit, "Service", "ExecStart")[-1], name, instance, env)
    restart = (values(unit, "Service", "Restart") or ["no"])[-1]
    delay = float((values(unit, "Service", "RestartSec") or ["0.1"])[-1].rstrip("s"))
    with log_file(name) as log:
        while True:
            log.write(f"--- ExecStart: {shlex.join(argv)}\n".encode())
            rc = subprocess.run(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL).returncode
            log.write(f"--- exited {rc}\n".encode())
            if restart != "always" and not (restart == "on-failure" and rc != 0):
                return
            time.sleep(delay)  # RestartSec= is systemd's own pause between restarts


def start(name: str) -> int:
    unit, instance = load(name)
    if name.endswith(".timer"):
        record("active", name)
        return 0
    kind = (values(unit, "Service", "Type") or ["simple"])[-1]
    if kind == "oneshot":
        return run_oneshot(name, unit, instance)
    if name in state()["active"]:
        return 0
    subprocess.Popen([sys.executable, __file__, "__supervise", name], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record("active", name)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print("systemctl stub: no command", file=sys.stderr)
        return 1
    cmd, args = argv[0], [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if cmd == "__supervise":
        supervise(args[0])
        return 0
    if cmd == "daemon-reload":
        return 0
    if cmd == "enable":
        for name in args:
            load(name)
            record("enabled", name)
        rc = 0
        if "--now" in flags:
            for name in args:
                rc = start(name) or rc
        return rc
    if cmd == "start":
        rc = 0
        for name in args:
            rc = start(name) or rc
        return rc
    if cmd == "is-active":
        return 0 if args[0] in state()["active"] else 3
    print(f"systemctl stub: unsupported command {cmd!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
