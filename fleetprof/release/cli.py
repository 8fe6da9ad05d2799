"""``fleetprof release …``: validate the pipeline, build a manifest, run, approve, status.

Exit status of ``run``: 0 promoted through every wave (or waiting at a manual gate),
1 rolled back or failed, 2 bad input, 3 blocked (window, blackout, alarm) or a stack locked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

release_app = typer.Typer(help="The delivery pipeline: waves, approvals, bake, rollback (pipeline.yaml).",
                          no_args_is_help=True)

PipelineOpt = Annotated[Path, typer.Option("--pipeline", "-p", help="Pipeline file.")]
RepoOpt = Annotated[Path, typer.Option("--repo", help="Repository root (Pulumi project, policies, benchmarks).")]


@contextmanager
def aws_errors() -> Iterator[None]:
    """AWS failures (no credentials, missing bucket/table, throttling) as one CLI line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from fleetprof.cli import fail

    try:
        yield
    except (BotoCoreError, ClientError) as e:
        fail(f"AWS: {e}")


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")


def _known_stacks(repo: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in repo.glob("Pulumi.*.yaml"))


def _pipeline(path: Path, repo: Path):  # noqa: ANN202 - Pipeline
    from fleetprof.release.pipeline import load_pipeline

    return load_pipeline(path, _known_stacks(repo))


@release_app.command("validate")
def validate(pipeline: PipelineOpt = Path("pipeline.yaml"), repo: RepoOpt = Path(".")) -> None:
    """Check pipeline.yaml (keys, times, stacks that exist as Pulumi.<stack>.yaml).

    Example: fleetprof release validate -p pipeline.yaml
    """
    from fleetprof.cli import cli_errors, out_console

    with cli_errors():
        p = _pipeline(pipeline, repo)
        for w in p.waves:
            out_console.print(f"{w.stage}/{w.name}: {', '.join(w.stacks)} · approvals {sorted(w.approvals) or '-'} · "
                              f"bake {w.bake_s:g}s · {w.promotion}", markup=False)


@release_app.command("manifest")
def manifest(
    version: Annotated[str, typer.Option("--version", help="Release version (e.g. the commit).")],
    image: Annotated[str, typer.Option("--image", help="Image pinned by digest: <repository>@sha256:<hex>.")],
    wheel: Annotated[Path | None, typer.Option("--wheel", help="The wheel built once; its sha256 is recorded.")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="Manifest file (- for stdout).")] = "-",
) -> None:
    """Write a release manifest (the artefact a pipeline run deploys).

    Example: fleetprof release manifest --version $GITHUB_SHA --image 1234.dkr.ecr.us-east-1.amazonaws.com/fleetprof@sha256:… --wheel dist/fleetprof-0.1.0-py3-none-any.whl -o release.json
    """
    import hashlib

    from fleetprof.cli import cli_errors, fail, write_output
    from fleetprof.release.pipeline import release_from_dict

    with cli_errors():
        data = {"version": version, "image": image}
        if wheel is not None:
            if not wheel.is_file():
                fail(f"wheel not found: {wheel}")
            data["wheel_sha256"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
        rel = release_from_dict(data)
        write_output(output, json.dumps(rel.to_dict(), indent=2) + "\n")


def _store(p, clock):  # noqa: ANN001, ANN202
    from fleetprof.release.state import StateStore

    return StateStore(p.state, clock)


@release_app.command("init")
def init(pipeline: PipelineOpt = Path("pipeline.yaml"), repo: RepoOpt = Path(".")) -> None:
    """Create the DynamoDB state table when missing (the S3 bucket must exist)."""
    from fleetprof.cli import cli_errors
    from fleetprof.release.clock import SystemClock

    with cli_errors(), aws_errors():
        _store(_pipeline(pipeline, repo), SystemClock()).ensure_table()


@release_app.command("run")
def run(
    release: Annotated[Path, typer.Option("--release", "-r", help="Release manifest (fleetprof release manifest).")],
    pipeline: PipelineOpt = Path("pipeline.yaml"),
    repo: RepoOpt = Path("."),
    events: Annotated[Path | None, typer.Option("--events", help="Also write the event log (JSON) here.")] = None,
    deployer: Annotated[str, typer.Option("--deployer", help="pulumi (Automation API) or local:<state.json> (dry runs, tests).")] = "pulumi",
    lock_wait: Annotated[float, typer.Option("--lock-wait", help="Seconds to wait for a stack locked by another run.")] = 0.0,
    run_id: Annotated[str, typer.Option("--run-id", help="Run id (default: random); also the lock owner.")] = "",
) -> None:
    """Carry a release through the pipeline's waves; print the summary table.

    Example: fleetprof release run -p pipeline.yaml -r release.json --events release-events.json
    """
    from fleetprof.cli import cli_errors, err_console, fail
    from fleetprof.release.clock import SystemClock
    from fleetprof.release.deployer import AutomationDeployer, LocalDeployer
    from fleetprof.release.events import EventLog, print_summary
    from fleetprof.release.orchestrator import Orchestrator
    from fleetprof.release.pipeline import release_from_dict

    with cli_errors(), aws_errors():
        p = _pipeline(pipeline, repo)
        try:
            rel = release_from_dict(json.loads(release.read_text()), str(release))
        except (OSError, json.JSONDecodeError) as e:
            fail(f"cannot read release manifest {release}: {e}")
        if deployer == "pulumi":
            dep = AutomationDeployer(repo)
        elif deployer.startswith("local:"):
            dep = LocalDeployer.load(deployer[len("local:"):])
        else:
            fail(f"unknown --deployer {deployer!r} (expected pulumi or local:<path>)")
        clock = SystemClock()
        store = _store(p, clock)
        rid = run_id or f"{rel.version}-{uuid.uuid4().hex[:8]}"
        log = EventLog(rid, rel.version, clock, events, sink=store.write_events,
                       echo=lambda e: err_console.print(json.dumps(e), markup=False, soft_wrap=True))
        orch = Orchestrator(p, store, dep, clock, log, repo=repo, owner=rid, lock_wait_s=lock_wait)
        result = orch.run(rel)
        print_summary(rel.version, result.rows)
    raise typer.Exit(result.exit_code)


@release_app.command("approve")
def approve(
    wave: Annotated[str, typer.Argument(help="Wave with manual promotion.")],
    version: Annotated[str, typer.Argument(help="Release version to let in.")],
    by: Annotated[str, typer.Option("--by", help="Who approves (recorded).")] = "",
    pipeline: PipelineOpt = Path("pipeline.yaml"),
    repo: RepoOpt = Path("."),
) -> None:
    """Approve a version into a manual wave; the next `release run` continues there."""
    import getpass

    from fleetprof.cli import cli_errors
    from fleetprof.release.clock import SystemClock

    with cli_errors(), aws_errors():
        p = _pipeline(pipeline, repo)
        p.wave(wave)
        _store(p, SystemClock()).approve(wave, version, by or getpass.getuser())


@release_app.command("status")
def status(pipeline: PipelineOpt = Path("pipeline.yaml"), repo: RepoOpt = Path(".")) -> None:
    """Per stack: last good release, in-flight version and step, lock holder, rejected versions."""
    from rich.table import Table
    from rich.text import Text

    from fleetprof.cli import cli_errors, out_console
    from fleetprof.release.clock import SystemClock
    from fleetprof.release.orchestrator import applied_summary

    with cli_errors(), aws_errors():
        p = _pipeline(pipeline, repo)
        store = _store(p, SystemClock())
        t = Table(title="fleetprof release status", title_justify="left")
        for col in ("wave", "stack", "last good", "image", "in flight", "step", "lock", "rejected"):
            t.add_column(col, overflow="fold")
        for w in p.waves:
            for s in w.stacks:
                a = applied_summary(store.stack_state(s))
                lock = store.lock_info(s)
                t.add_row(*(Text(x) for x in (w.name, s, a["last_good"], a["image"], a["in_flight"], a["step"],
                                              f"{lock.owner} ({lock.version})" if lock else "", a["rejected"])))
        out_console.print(t)
