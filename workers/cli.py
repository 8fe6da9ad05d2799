"""``fleetprof compact | analyze | backfill`` (registered by ``fleetprof.cli.register_plugins``).

Each command runs its job on a local Ray when no ``--ray-address`` is given (``--serial``:
in-process, no Ray). With ``--ray-address http://host:8265`` (a Ray dashboard, e.g. the
head reached through an SSM port-forward) the same ``python -m workers.<job> …`` command
line is submitted as a Ray job with the current directory as ``working_dir`` and its logs
are followed; with ``ray://…`` or ``host:port`` the driver connects to that cluster.
Module-level imports stay light: typer only.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

RayAddress = Annotated[str | None, typer.Option("--ray-address", help="Ray address: http://head:8265 submits a job; ray://… or host:port connects")]
Storage = Annotated[str | None, typer.Option("--storage", help="file:///abs/path or s3://bucket/prefix (env FLEETPROF_STORAGE)")]
Analysis = Annotated[str | None, typer.Option("--analysis", help="analysis store URL, e.g. s3://bucket/ (env FLEETPROF_ANALYSIS; default: the profile store)")]
IndexUrl = Annotated[str | None, typer.Option("--index", help="sqlite:///abs/path.db or dynamodb://table (env FLEETPROF_INDEX)")]
Serial = Annotated[bool, typer.Option("--serial", help="run in this process without Ray")]


def submit_job(address: str, module: str, argv: list[str], *, follow: bool = True) -> int:
    """Submit ``python -m <module> <argv>`` to the Ray job server at ``address``; follow its
    logs; return 0 when it succeeded."""
    import asyncio
    import shlex

    from ray.job_submission import JobStatus, JobSubmissionClient

    from workers.storage_io import backend_env

    client = JobSubmissionClient(address)
    entry = " ".join(shlex.quote(x) for x in ["python", "-m", module, *argv])
    job_id = client.submit_job(entrypoint=entry, runtime_env={"working_dir": ".", "env_vars": backend_env()})
    print(f"submitted Ray job {job_id}: {entry}", file=sys.stderr)
    if not follow:
        return 0

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="")

    asyncio.run(tail())
    status = client.get_job_status(job_id)
    print(f"job {job_id}: {status}", file=sys.stderr)
    return 0 if status == JobStatus.SUCCEEDED else 1


def _dispatch(module: str, argv: list[str], ray_address: str | None) -> None:
    import importlib

    if ray_address and ray_address.startswith(("http://", "https://")):
        raise typer.Exit(submit_job(ray_address, module, argv))
    if ray_address:
        argv = [*argv, "--ray-address", ray_address]
    rc = importlib.import_module(module).main(argv)
    if rc:
        raise typer.Exit(rc)


def _common(storage: str | None, index: str | None, serial: bool) -> list[str]:
    out: list[str] = []
    if storage:
        out += ["--storage", storage]
    if index:
        out += ["--index", index]
    if serial:
        out.append("--serial")
    return out


def register(app: typer.Typer) -> None:
    """Add the worker commands to the ``fleetprof`` typer app."""

    @app.command("compact")
    def compact_cmd(
        levels: Annotated[str, typer.Option(help="target levels, comma-separated")] = "1,2",
        tenant: Annotated[list[str] | None, typer.Option(help="only this tenant (repeatable)")] = None,
        no_settle: Annotated[bool, typer.Option("--no-settle", help="also compact buckets that just ended")] = False,
        grace_s: Annotated[float, typer.Option(help="GC grace period for compacted inputs (s)")] = 600.0,
        storage: Storage = None, index: IndexUrl = None, ray_address: RayAddress = None, serial: Serial = False,
    ) -> None:
        """Compact L0 segments into hourly L1 and daily L2 segments, then GC compacted inputs.

        Example: fleetprof compact --storage file:///data --index sqlite:///data/index.db
        """
        argv = ["--levels", levels, "--grace-s", str(grace_s), *_common(storage, index, serial)]
        for t in tenant or []:
            argv += ["--tenant", t]
        if no_settle:
            argv.append("--no-settle")
        _dispatch("workers.compact", argv, ray_address)

    @app.command("analyze")
    def analyze_cmd(
        window: Annotated[list[str], typer.Option(help="YYYY-MM-DD or YYYY-MM-DDTHH (UTC), repeatable")],
        tenant: Annotated[list[str] | None, typer.Option(help="only this tenant (repeatable)")] = None,
        vcpu_hour_usd: Annotated[float | None, typer.Option(help="$ per vCPU-hour for cost estimates")] = None,
        analysis: Analysis = None,
        executor: Annotated[str, typer.Option(help="auto (serial for one task or a small window, else Ray), serial or ray")] = "auto",
        storage: Storage = None, index: IndexUrl = None, ray_address: RayAddress = None, serial: Serial = False,
    ) -> None:
        """Fleet-wide analysis (top functions, hotspots, regressions, leaks, cost) -> analysis/<tenant>/<window>/
        in the analysis store; prints the executor it picked and where each report went.

        Example: fleetprof analyze --window 2026-11-21 --vcpu-hour-usd 0.034
        """
        argv = [x for w in window for x in ("--window", w)] + _common(storage, index, serial) + ["--executor", executor]
        for t in tenant or []:
            argv += ["--tenant", t]
        if vcpu_hour_usd is not None:
            argv += ["--vcpu-hour-usd", str(vcpu_hour_usd)]
        if analysis:
            argv += ["--analysis", analysis]
        _dispatch("workers.analyze", argv, ray_address)

    @app.command("backfill")
    def backfill_cmd(
        start: Annotated[str, typer.Option("--from", help="start (ISO date/time UTC or epoch ms)")],
        until: Annotated[str, typer.Option("--until", help="end (exclusive)")],
        tenant: Annotated[list[str] | None, typer.Option(help="only this tenant (repeatable)")] = None,
        services: Annotated[str | None, typer.Option(help="comma-separated services")] = None,
        what: Annotated[str, typer.Option(help="compact, analyze or both")] = "compact,analyze",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan only")] = False,
        restart: Annotated[bool, typer.Option("--restart", help="ignore the checkpoint")] = False,
        storage: Storage = None, index: IndexUrl = None, ray_address: RayAddress = None, serial: Serial = False,
    ) -> None:
        """Recompute compaction levels and analyses for a past range (resumable).

        Example: fleetprof backfill --from 2026-11-01 --until 2026-11-21 --ray-address http://127.0.0.1:8265
        """
        argv = ["--from", start, "--until", until, "--what", what, *_common(storage, index, serial)]
        for t in tenant or []:
            argv += ["--tenant", t]
        if services:
            argv += ["--services", services]
        if dry_run:
            argv.append("--dry-run")
        if restart:
            argv.append("--restart")
        _dispatch("workers.backfill", argv, ray_address)
