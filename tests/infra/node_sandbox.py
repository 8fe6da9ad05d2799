"""Sandboxed EC2-like nodes for running Ray boot scripts for real (root, bubblewrap, iproute2).

* :class:`Subnet` is a VPC subnet in miniature: a Linux bridge in the host's network namespace
  (holding the "AWS endpoint" address, where the test's moto server listens) and one network
  namespace per node joined to it by a veth pair, with a default route via the bridge (so a
  node finds its own address as on EC2; nothing is forwarded beyond the bridge).
* :class:`Node` is one host: its own disk (a directory per writable path: ``/etc`` as a copy
  of the host's, ``/opt``, ``/var``, ``/tmp``, ``/run``, ``/usr/local/bin``), the host's other
  directories read-only, its own PID namespace, and the stubs of ``node_stubs/`` on the PATH
  for what a container cannot do (``dnf``, ``useradd``, ``systemctl``, ``aws``). Its first
  process (``node_stubs/node_init.py``) runs the commands :meth:`Node.run` sends.

Everything is torn down by :meth:`Subnet.close` / :meth:`Node.close` (idempotent): the node's
PID namespace ends with its first process, then any process left in a node's network
namespace is killed, the namespaces and the bridge deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

STUBS = Path(__file__).resolve().parent / "node_stubs"
REPO = Path(__file__).resolve().parents[2]
CLOUD_INIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VIEW_MOUNT = "/var/lib/host-python-deps"
"""Where a node sees the host's dependencies of fleetprof (see :func:`site_view`)."""
HIDDEN_TOP = {"proc", "dev", "tmp", "opt", "run", "var", "root", "etc", "lost+found", "old_root"}
"""Top-level host directories a node does not share (it gets its own or none)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Subnet:
    """A bridge (``gateway`` address) plus one network namespace per node."""

    tag: str
    gateway: str
    prefix: int = 16
    namespaces: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"fpb{self.tag}"[:15]

    def open(self) -> Subnet:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add_node(self, name: str, address: str) -> str:
        """Create the namespace of node ``name`` with ``address``; return the namespace name."""
        ns = f"fp{self.tag}-{name}"
        inner, outer = f"fv{self.tag}{name[0]}"[:15], f"fw{self.tag}{name[0]}"[:15]
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "master", self.bridge, "up")
        _ip("-n", ns, "addr", "add", f"{address}/{self.prefix}", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.gateway)
        return ns

    def close(self) -> None:
        for ns in self.namespaces:
            kill_namespace_processes(ns)
            _ip("netns", "del", ns, check=False)
        self.namespaces.clear()
        _ip("link", "del", self.bridge, check=False)


def kill_namespace_processes(ns: str) -> None:
    """SIGKILL every process still in network namespace ``ns``."""
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def site_view(venv: Path, dest: Path, exclude: str = "fleetprof") -> Path:
    """A directory of links to ``venv``'s site-packages entries, without the distribution
    ``exclude`` (its package, metadata and editable hooks) and without ``.pth`` files."""
    site = next((venv / "lib").glob("python3.*/site-packages"))
    dest.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        name = entry.name
        if name.endswith(".pth") or name.startswith("__editable__") or name == "__pycache__":
            continue
        if name == exclude or name.startswith(f"{exclude}-") and name.endswith(".dist-info"):
            continue
        (dest / name).symlink_to(entry)
    return dest


@dataclass
class Node:
    """One sandboxed host (see module docstring). ``env`` is what its commands always get
    besides ``PATH`` (the instance's credentials and endpoint, which IMDS gives on EC2)."""

    name: str
    netns: str
    disk: Path
    env: Mapping[str, str]
    view: Path
    proc: subprocess.Popen | None = None

    def _prepare_disk(self) -> dict[str, Path]:
        dirs = {p: self.disk / p.strip("/").replace("/", "_") for p in
                ("/opt", "/var", "/tmp", "/run", "/usr/local/bin", "/etc")}
        for p, d in dirs.items():
            if p == "/etc":
                shutil.copytree("/etc", d, symlinks=True, ignore_dangling_symlinks=True,
                                ignore=shutil.ignore_patterns("ssl", "ssh", "shadow*", "gshadow*"))
                shutil.copytree("/etc/ssl", d / "ssl", symlinks=True)
            else:
                d.mkdir(parents=True)
        dirs["/tmp"].chmod(0o1777)
        (dirs["/var"] / "log").mkdir()
        (dirs["/var"] / "lib").mkdir()
        (dirs["/var"] / "log" / "cloud-init-output.log").touch()
        stub_bin = self.disk / "stub-bin"
        stub_bin.mkdir()
        for tool, target in (("dnf", "host.py dnf"), ("useradd", "host.py useradd"), ("systemctl", "systemctl.py"),
                             ("aws", "aws.py")):
            script = stub_bin / tool
            script.write_text(f'#!/bin/sh\nexec {sys.executable} {STUBS}/{target} "$@"\n')
            script.chmod(0o755)
        dirs["/usr/local/sbin"] = stub_bin
        return dirs

    def _bwrap(self, dirs: dict[str, Path]) -> list[str]:
        args = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--hostname", self.name, "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc"]
        for entry in sorted(Path("/").iterdir()):
            if entry.name in HIDDEN_TOP:
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry), str(entry)]
            elif entry.is_dir():
                args += ["--ro-bind", str(entry), str(entry)]
        args += ["--perms", "0755", "--tmpfs", "/root"]
        pyenv = Path(sys.base_prefix)
        if pyenv.is_relative_to("/root"):  # traversable, as /usr/bin/python3.11 is on Amazon Linux
            for parent in reversed(pyenv.relative_to("/root").parents[:-1]):
                args += ["--perms", "0755", "--dir", str(Path("/root") / parent)]
            args += ["--ro-bind", str(pyenv), str(pyenv)]
        for path, d in dirs.items():
            args += ["--ro-bind" if path == "/usr/local/sbin" else "--bind", str(d), path]
        return [*args, "--ro-bind", str(self.view), VIEW_MOUNT]

    def start(self) -> Node:
        dirs = self._prepare_disk()
        self.dirs = dirs
        argv = ["ip", "netns", "exec", self.netns, *self._bwrap(dirs), sys.executable, str(STUBS / "node_init.py")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={"PATH": os.environ["PATH"]})
        return self

    def command_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "PATH": CLOUD_INIT_PATH,
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "SYSTEMCTL_STUB_STATE": "/run/systemctl-stub",
            "NODE_BASE_PYTHON": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
            "NODE_STUB_PYTHON": sys.executable,
            "NODE_SITE_VIEW": VIEW_MOUNT,
            **self.env,
            **(extra or {}),
        }

    def run(self, cmd: str, timeout: float, extra_env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run ``cmd`` (bash) on the node as root; ``(exit status, output)``."""
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"cmd": cmd, "env": self.command_env(extra_env), "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"node {self.name} exited (status {self.proc.poll()})")
        reply = json.loads(line)
        return reply["rc"], reply["out"]

    def state(self) -> dict:
        """The systemctl stub's record (enabled/active units, oneshot runs)."""
        path = self.dirs["/run"] / "systemctl-stub" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"enabled": [], "active": [], "runs": []}

    def unit_log(self, unit: str) -> str:
        path = self.dirs["/run"] / "systemctl-stub" / "logs" / f"{unit}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()  # the sandbox's PID namespace ends with it (--die-with-parent)
        self.proc.wait(timeout=30)
        kill_namespace_processes(self.netns)
        self.proc = None


def wait_for(check, timeout: float, what: str, interval: float = 0.5):
    """Poll ``check()`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready within {timeout:.0f} s (last: {last!r})")
