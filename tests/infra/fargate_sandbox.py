"""Run the service container as Fargate would, without Docker: bubblewrap over this host.

Contract: :func:`run_task` takes the :class:`components.aws_model.container.ContainerRun`
that ECS would start (image config merged with the rendered task definition) and runs it
in a bubblewrap sandbox with the same constraints: the whole root file system read-only,
only the container's writable mount points (``/tmp``) writable and empty, the container's
UID/GID, its own network namespace (as ``awsvpc`` gives each task), no environment but the
container's. The image's contents are modelled by this host: its Python environment is
the project's ``.venv`` (first on ``PATH``, where the image has ``/usr/local/bin``), and the
kernel cache the image compiles at build time (``NUMBA_CACHE_DIR`` in the Dockerfile) is a
cache compiled the same way, mounted read-only at that path. Inside, ``fargate_task.py``
drives the task (moto for S3/DynamoDB, readiness, health check, ingest and query) and
reports JSON, returned here as a dict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from components.aws_model.container import ContainerRun

IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
DRIVER = Path(__file__).resolve().parent / "fargate_task.py"
TASK_ROLE_ENV = {"AWS_ACCESS_KEY_ID": "task-role", "AWS_SECRET_ACCESS_KEY": "task-role", "AWS_SESSION_TOKEN": "task-role"}


def image_env(run: ContainerRun, home: str | None) -> dict[str, str]:
    """The container's environment with this host's Python standing in for the image's."""
    env = {"PATH": f"{Path(sys.executable).parent}:{IMAGE_PATH}", **run.env}
    if home is not None:
        env["HOME"] = home
    return env


def _ro_mount(host: Path, target: str) -> list[str]:
    """Mount ``host`` read-only at ``target``, under an empty read-only top-level directory
    (the read-only root cannot grow a mount point of its own)."""
    top = "/" + target.strip("/").split("/")[0]
    return ["--tmpfs", top, "--ro-bind", str(host), target, "--remount-ro", top]


def bwrap_argv(run: ContainerRun, spec_file: Path, log_dir: Path, cache: Path | None) -> list[str]:
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in run.writable:
        argv += ["--tmpfs", path]
    argv += ["--bind", str(log_dir), "/tmp/.sandbox-log", "--ro-bind", str(spec_file), "/tmp/.sandbox-spec.json"]
    argv += ["--ro-bind", str(DRIVER), "/tmp/.sandbox-driver.py"]
    if cache is not None and run.env.get("NUMBA_CACHE_DIR"):
        argv += _ro_mount(cache, run.env["NUMBA_CACHE_DIR"])
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-user", "--die-with-parent"]
    argv += ["--uid", str(run.uid), "--gid", str(run.gid), "--clearenv", "--setenv", "PATH", f"{Path(sys.executable).parent}:{IMAGE_PATH}"]
    argv += ["--chdir", "/", "--", sys.executable, "/tmp/.sandbox-driver.py", "/tmp/.sandbox-spec.json"]
    return argv


def run_task(
    run: ContainerRun,
    *,
    tmp: Path,
    tables: list[dict[str, Any]],
    region: str,
    cache: Path | None,
    home: str | None = None,
    token: str | None = None,
    deadline_s: float = 120.0,
) -> dict[str, Any]:
    """Start ``run`` (its secrets already resolved into its environment) in the sandbox, the
    client using ``token``; return the driver's report (plus the container log)."""
    log_dir = tmp / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = image_env(run, home)
    buckets = sorted({v[5:].split("/")[0] for v in env.values() if v.startswith("s3://")})
    spec = {
        "argv": list(run.argv),
        "env": env,
        "task_role_env": TASK_ROLE_ENV,
        "workdir": run.workdir,
        "healthcheck": list(run.healthcheck),
        "port": run.port,
        "buckets": buckets,
        "tables": tables,
        "region": region,
        "deadline_s": deadline_s,
        "token": token,
        "log_dir": "/tmp/.sandbox-log",
    }
    spec_file = tmp / "spec.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run(bwrap_argv(run, spec_file, log_dir, cache), capture_output=True, timeout=deadline_s + 60)
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    report: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": f"driver printed nothing (rc {done.returncode})"}
    report["driver_stderr"] = done.stderr.decode(errors="replace")[-2000:]
    log = log_dir / "container.log"
    report["container_log"] = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    return report

