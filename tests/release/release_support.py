"""Release-pipeline fixtures: state on the moto server, a real fleetprof server as every
stack's URL, alarms per stack, a local deployer and a fake clock."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from aws_fixtures import aws_client  # noqa: E402
from serverutil import PUSH, PUSH_HEADERS, pprof_bytes, push_body, server_list, start_server  # noqa: E402

from fleetprof.release.clock import FakeClock  # noqa: E402
from fleetprof.release.deployer import LocalDeployer  # noqa: E402
from fleetprof.release.events import EventLog  # noqa: E402
from fleetprof.release.orchestrator import Orchestrator  # noqa: E402
from fleetprof.release.pipeline import Pipeline, Release, parse_pipeline  # noqa: E402
from fleetprof.release.state import StateStore, table_spec  # noqa: E402

STACKS = ("dev", "staging", "prod-use1", "prod-euw1", "prod-apse2")
ALARM_SUFFIXES = ("observability-alb-5xx", "ingest-deploy-5xx")
APP = "fleetprof-app"


def release(version: str) -> Release:
    digest = uuid.uuid5(uuid.NAMESPACE_URL, version).hex * 2
    return Release(version, f"123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetprof@sha256:{digest}", "b" * 64)


def pipeline_doc(bucket: str, table: str, url: str, **overrides: Any) -> dict[str, Any]:
    """beta (dev) → gamma (staging) → prod in two waves (one region, then two)."""
    doc: dict[str, Any] = {
        "state": {"bucket": bucket, "table": table, "lock_lease_s": 300},
        "policy_command": ["{python}", "-c", "pass"],
        "defaults": {"alarms": list(ALARM_SUFFIXES), "bake_s": 600, "poll_s": 60, "min_datapoints": 3, "url": url},
        "stages": [
            {"name": "beta", "waves": [{"name": "dev", "stacks": ["dev"]}], "approvals": {"smoke": {}}},
            {"name": "gamma", "waves": [{"name": "staging", "stacks": ["staging"]}],
             "approvals": {"smoke": {}, "load": {"requests": 60, "concurrency": 8, "min_rate": 0, "max_p99_ms": 60000,
                                                 "max_error_rate": 0.0}},
             "profile_bake": {"service": APP, "threshold_pp": 5, "min_share_pct": 2,
                              "profile_types": ["process_cpu:cpu:nanoseconds:cpu:nanoseconds"]}},
            {"name": "prod", "waves": [{"name": "prod-1", "stacks": ["prod-use1"]},
                                       {"name": "prod-2", "stacks": ["prod-euw1", "prod-apse2"]}]},
        ],
    }
    doc.update(overrides)
    return doc


@dataclass
class Env:
    """One test's pipeline world."""

    pipeline: Pipeline
    state: StateStore
    deployer: LocalDeployer
    clock: FakeClock
    url: str
    tmp: Path
    logs: dict[str, EventLog] = field(default_factory=dict)

    def orchestrator(self, version: str, **kw: Any) -> Orchestrator:
        run_id = f"{version}-{len(self.logs) + 1}"
        log = EventLog(run_id, version, self.clock, self.tmp / f"{run_id}.json", sink=self.state.write_events)
        self.logs[run_id] = log
        return Orchestrator(self.pipeline, self.state, self.deployer, kw.pop("clock", self.clock), log, owner=run_id, **kw)

    def run(self, version: str, hot: str | None = None, **kw: Any) -> tuple[int, EventLog]:
        """Run ``version``; its agents push profiles during staging's bake (``hot`` adds a
        hot function), the version it replaces pushed just before staging's deploy."""
        clock = kw.get("clock", self.clock)
        extra = kw.pop("after_step", None)

        def traffic(step: str, wave: str) -> None:
            if (step, wave) == ("previewed", "staging"):
                good = self.state.stack_state("staging").last_good
                if good:
                    push_version(self.url, good["version"], at=clock.now() - 1, app=self.app)
            if (step, wave) == ("approved", "staging"):
                push_version(self.url, version, hot=hot, at=clock.now() + 1, app=self.app)
            if extra is not None:
                extra(step, wave)

        orch = self.orchestrator(version, after_step=traffic, **kw)
        result = orch.run(release(version))
        return result.exit_code, orch.events

    def set_alarm(self, stack: str, state: str, suffix: str = "observability-alb-5xx") -> None:
        aws_client("cloudwatch").set_alarm_state(AlarmName=f"{suffix}-{self.tag}-{stack}", StateValue=state,
                                                 StateReason=f"test: {state}")

    tag: str = ""

    @property
    def app(self) -> str:
        """This test's service name (the server is shared by the module's tests)."""
        return f"{APP}-{self.tag}"


def push_version(url: str, version: str, hot: str | None = None, at: float | None = None, app: str = APP) -> None:
    """CPU profiles of APP labelled ``version``; ``hot`` adds a function taking 40 %."""
    stacks = [["main", "serve", "handle"], ["main", "serve", "encode"], ["main", "flush"]]
    values = [500, 300, 200]
    if hot:
        stacks.append(["main", "serve", hot])
        values.append(700)
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(3):
            prof = pprof_bytes(stacks, [v * 10_000_000 for v in values], int(at * 1e9) if at is not None else None)
            body = push_body(app, prof, {"version": version})
            r = c.post(PUSH, content=body, headers=PUSH_HEADERS)
            assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real fleetprof server: the URL every stack exports."""
    tmp = tmp_path_factory.mktemp("release-server")
    for servers in server_list():
        s = start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.05", tmp=tmp)
        yield s.url


@pytest.fixture
def env(moto_server: str, fleet_server: str, tmp_path: Path) -> Env:
    tag = uuid.uuid4().hex[:8]
    bucket, table = f"release-{tag}", f"release-{tag}"
    aws_client("s3").create_bucket(Bucket=bucket)
    aws_client("dynamodb").create_table(**table_spec(table))
    cw = aws_client("cloudwatch")
    for stack in STACKS:
        for suffix in ALARM_SUFFIXES:
            name = f"{suffix}-{tag}-{stack}"
            cw.put_metric_alarm(AlarmName=name, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=5,
                                ComparisonOperator="GreaterThanThreshold", Tags=[{"Key": "Environment", "Value": stack}])
            cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test: healthy")
    doc = pipeline_doc(bucket, table, fleet_server)
    doc["defaults"]["alarms"] = [f"{suffix}-{tag}" for suffix in ALARM_SUFFIXES]  # this test's alarms only
    doc["stages"][1]["profile_bake"]["service"] = f"{APP}-{tag}"
    clock = FakeClock()
    deployer = LocalDeployer({s: {"config": {"aws:region": "us-east-1", "fleetprof:desiredCount": "2"},
                                  "outputs": {"url": fleet_server}} for s in STACKS}, path=tmp_path / "deployer.json")
    e = Env(parse_pipeline(doc, STACKS), StateStore(parse_pipeline(doc).state, clock), deployer, clock, fleet_server, tmp_path)
    e.tag = tag
    return e


def excerpt(log: EventLog, kinds: tuple[str, ...] = ()) -> str:
    """A short, readable excerpt of a log (printed with -s for the report)."""
    rows = [e for e in log.events if not kinds or e["kind"] in kinds]
    return "\n".join(f"{e['seq']:>3} {e['kind']:<28} {e.get('wave', ''):<9} {e.get('stack', ''):<11} {e.get('message', '')[:110]}"
                     for e in rows)
