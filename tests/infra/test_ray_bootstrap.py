"""The dev stack's Ray boot scripts (rendered with ``anomalyNotifications`` and ``rayTracing``
on), executed: two sandboxed nodes, real Ray, real jobs.

The head's and the workers' user data are taken from the rendered stack (the instance's
``userData`` and the launch template's base64 ``userData``) and run unchanged as root on two
sandboxed hosts (:mod:`node_sandbox`: own network namespace each, joined by a bridge; the
head has the private IP the rendering gave it, so the worker's script reaches it as on EC2).
"AWS" is a moto server on the bridge, holding what the stack creates: the buckets, the index
table, the log group, the anomaly topic, and the two artifact objects uploaded exactly as the
program's ``BucketObjectv2`` resources would (same bucket, key and file). Only host calls are stubs
(``dnf``, ``useradd``, ``systemctl``, ``aws``; see ``node_stubs/``); pip installs the wheel
from the artifacts bucket with ``PIP_NO_INDEX=1`` (the host's dependencies stand in for the
index, so a constraint that does not match fails the install).

Asserted: a Ray head with token auth starts (the dashboard refuses requests without the
token), the worker joins (two alive nodes), and the service of every enabled timer runs as
its unit says and succeeds against seeded data: compaction compacts, analysis writes its
window to the analysis bucket and publishes the seeded anomaly to the topic (read back
through an SQS subscription), retention deletes expired data, each publishing
``JobSucceeded``. Every job's spans reach the CloudWatch agent's OTLP receiver that the boot
script configured (the stub agent listens where the configuration says, on each node's
loopback): the compaction's job span and its Ray tasks' spans (from the workers of either node)
form one trace, and the analysis and retention jobs have their job spans. The previous scheduled command (``--window 1h``) fails its unit and
publishes ``JobFailed``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from infra_support import one
from node_sandbox import REPO, Node, Subnet, site_view, wait_for

from components.mockrun import render
from components.ray_cluster import SUBMIT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap") or not shutil.which("ip"),
                       reason="needs root, bubblewrap and iproute2 (make installs them)"),
    pytest.mark.timeout(420),
]

GATEWAY = "10.0.250.254"
WORKER_IP = "10.0.250.2"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
TENANT = "acme"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
OLD_ANALYZE = f"{SUBMIT} python -m workers.analyze --window 1h"
PROBE = "anomaly-probe"
"""A service whose self share of ``re.compile`` jumps in one bucket of the analysed day."""
BASE = {"main;handler;json.dumps": 0.3, "main;handler;db.query": 0.4, "main;handler;compute": 0.3}


def _anomaly_items(window_start: int) -> list:
    """One profile every 2 hours (dev's day has 12 anomaly buckets of 2 h) over the previous
    and the analysed day; ``re.compile`` appears in the 8th bucket of the analysed day only."""
    from workers import synth

    rng = np.random.default_rng(3)
    items = []
    for k in range(24):
        t = window_start - DAY_MS + k * 2 * HOUR_MS + HOUR_MS
        shares = {**BASE, "main;handler;re.compile": 0.25} if k == 12 + 7 else BASE
        stacks = synth._split(60 * 10**9, shares, rng, 0.04)
        items.append(synth.ingest_item({"service_name": PROBE, "instance": "p-1"}, synth.CPU, t,
                                       synth.profile_from_stacks(stacks, synth.CPU)))
    return items


def _boot(node: Node, script: str, timeout: float) -> None:
    (node.dirs["/run"] / "user-data").write_text(script)
    rc, out = node.run("set -o pipefail; bash /run/user-data 2>&1 | tee -a /var/log/cloud-init-output.log",
                       timeout=timeout, extra_env={"PIP_NO_INDEX": "1"})
    assert rc == 0, f"{node.name} user data failed ({rc}):\n{out[-6000:]}"


def _alive_nodes(head_ip: str, token: str) -> int:
    req = urllib.request.Request(f"http://{head_ip}:8265/api/v0/nodes?detail=false&limit=100",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return 0
    nodes = body.get("data", {}).get("result", {}).get("result", [])
    return sum(1 for n in nodes if n.get("state") == "ALIVE")


def _status_without_token(head_ip: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{head_ip}:8265/api/v0/nodes", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def _diagnose(nodes: list[Node]) -> str:
    """The tail of every unit's log on every node (for a failure message)."""
    parts = []
    for node in nodes:
        logs = node.dirs["/run"] / "systemctl-stub" / "logs"
        for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            parts.append(f"--- {node.name}: {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        ray_logs = node.dirs["/tmp"] / "ray" / "session_latest" / "logs"
        for name in ("gcs_server.out", "gcs_server.err", "raylet.out", "raylet.err"):
            if (ray_logs / name).exists():
                parts.append(f"--- {node.name}: ray {name}\n{(ray_logs / name).read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)


@pytest.fixture
def subnet():
    net = Subnet(tag=str(os.getpid() % 100000), gateway=GATEWAY)
    try:
        yield net.open()
    finally:
        net.close()


@pytest.fixture
def aws(subnet, monkeypatch):
    """A moto server on the subnet's gateway address; this process's boto3 points at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=GATEWAY, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield endpoint
    finally:
        server.stop()


def _seed(r, now_ms: int) -> dict:
    """Create what the stack creates and seed profile data; return names the test checks."""
    import boto3

    from fleetprof.metastore.index import dynamo_table_spec
    from workers import synth
    from workers.storage_io import open_backends, write_l0

    s3 = boto3.client("s3")
    for bucket in (r.exports["profilesBucket"], r.exports["analysisBucket"], r.exports["artifactsBucket"]):
        s3.create_bucket(Bucket=bucket)
    for obj in r.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        s3.put_object(Bucket=obj.inputs["bucket"], Key=obj.inputs["key"], Body=Path(obj.inputs["source"].path).read_bytes(),
                      ContentType=obj.inputs["contentType"])
    boto3.client("dynamodb").create_table(**dynamo_table_spec(r.exports["indexTable"]))
    logs = one(r, "aws:cloudwatch/logGroup:LogGroup", "ray-logs").inputs
    boto3.client("logs").create_log_group(logGroupName=logs["name"])
    topic = boto3.client("sns").create_topic(Name=r.exports["anomalyTopicArn"].rsplit(":", 1)[1])["TopicArn"]
    assert topic == r.exports["anomalyTopicArn"]
    sqs = boto3.client("sqs")
    inbox = sqs.create_queue(QueueName=f"anomaly-inbox-{os.getpid()}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    token = one(r, "aws:ssm/parameter:Parameter", "ray-auth-token").inputs
    value = token["value"]["value"] if isinstance(token["value"], dict) else token["value"]  # a Pulumi secret
    boto3.client("ssm").put_parameter(Name=token["name"], Type=token["type"], Value=value)
    store, index = open_backends(f"s3://{r.exports['profilesBucket']}/", f"dynamodb://{r.exports['indexTable']}")
    window_start = now_ms - now_ms % DAY_MS - DAY_MS  # dev analyses last-day
    write_l0(store, index, TENANT, synth.scenario_items(window_start + HOUR_MS), per_segment=60)
    write_l0(store, index, TENANT, synth.scenario_items(window_start - 10 * DAY_MS), per_segment=60)
    write_l0(store, index, TENANT, _anomaly_items(window_start), per_segment=60)
    return {"window_start": window_start, "expired_before": window_start - 8 * DAY_MS, "inbox": inbox}


def _sums(name: str) -> dict[str, float]:
    """Sum of every ``name`` datapoint of the dev stack per job (a day either side of now)."""
    import datetime as dt

    import boto3

    cw = boto3.client("cloudwatch")
    now = dt.datetime.now(dt.UTC)
    out = {}
    for job in ("compact", "analyze", "retention"):
        dims = [{"Name": "Environment", "Value": "dev"}, {"Name": "Job", "Value": job}]
        points = cw.get_metric_statistics(Namespace="Fleetprof/Jobs", MetricName=name, Dimensions=dims,
                                          StartTime=now - dt.timedelta(days=1), EndTime=now + dt.timedelta(days=1),
                                          Period=86400, Statistics=["Sum"])["Datapoints"]
        out[job] = sum(p["Sum"] for p in points)
    return out


def _metrics(name: str, before: dict[str, dict[str, float]]) -> set[str]:
    """Jobs whose ``name`` datapoints grew since ``before`` (taken at the test's start).

    Counted as growth, not listed: every moto server of one process shares its backends, so
    metrics other tests published earlier in the session are visible here too."""
    now = _sums(name)
    return {job for job, total in now.items() if total > before[name][job]}


def _agent_spans(nodes: list[Node]) -> list[dict]:
    """Every span the nodes' CloudWatch agents received (see ``node_stubs/host.py``)."""
    spans = []
    for node in nodes:
        path = node.dirs["/run"] / "systemctl-stub" / "cwagent-traces.jsonl"
        spans += [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return spans


def _one_compaction_trace(spans: list[dict]) -> bool:
    jobs = [s for s in spans if s["name"] == "job.compaction"]
    return len(jobs) == 1 and any(s["parent_id"] == jobs[0]["span_id"] and s["name"].startswith("task compact L")
                                  for s in spans)


def test_ray_nodes_boot_and_run_every_scheduled_job(subnet, aws, tmp_path):
    import boto3

    started = {name: _sums(name) for name in ("JobSucceeded", "JobFailed")}

    from fleetprof.metastore.index import ALL_STATES, MAX_TIME_MS
    from workers.analyze import parse_window
    from workers.storage_io import open_backends

    r = render("dev", overrides={"fleetprof:anomalyNotifications": True, "fleetprof:rayTracing": True})
    head_ip = one(r, "aws:ec2/instance:Instance", "ray-head").outputs["privateIp"]
    head_script = one(r, "aws:ec2/instance:Instance", "ray-head").inputs["userData"]
    worker_script = base64.b64decode(one(r, "aws:ec2/launchTemplate:LaunchTemplate", "ray-worker-lt").inputs["userData"]).decode()
    assert f"--address={head_ip}:6379" in worker_script

    now_ms = int(time.time() * 1000)
    view = site_view(REPO / ".venv", tmp_path / "site-view")
    nodes: list[Node] = []
    try:
        head_ns, worker_ns = subnet.add_node("head", head_ip), subnet.add_node("worker", WORKER_IP)
        seeded = _seed(r, now_ms)
        instance = {"AWS_ENDPOINT_URL": aws, **CREDENTIALS}
        head = Node("head", head_ns, tmp_path / "head", instance, view).start()
        nodes.append(head)
        _boot(head, head_script, timeout=240)

        token = boto3.client("ssm").get_parameter(Name=r.exports["rayAuthTokenParameter"], WithDecryption=True)
        token = token["Parameter"]["Value"]
        wait_for(lambda: _alive_nodes(head_ip, token) == 1, 120, "Ray head")
        assert _status_without_token(head_ip) in (401, 403), "the dashboard answers without the token"

        worker = Node("worker", worker_ns, tmp_path / "worker", instance, view).start()
        nodes.append(worker)
        _boot(worker, worker_script, timeout=240)
        wait_for(lambda: _alive_nodes(head_ip, token) == 2, 120, "worker joined")
        assert head.state()["active"].count("ray-head.service") == 1
        assert worker.state()["enabled"] == ["ray-worker.service"]

        timers = [u for u in head.state()["enabled"] if u.endswith(".timer")]
        assert sorted(timers) == ["fleetprof-analyze.timer", "fleetprof-compact.timer", "fleetprof-retention.timer"]
        for job in ("compact", "analyze", "retention"):  # the order the schedules make likely
            service = f"fleetprof-{job}.service"
            rc, out = head.run(f"systemctl start {service}", timeout=240)
            assert rc == 0, f"{service} failed:\n{head.unit_log(service)[-6000:]}{out}"

        store, index = open_backends(f"s3://{r.exports['profilesBucket']}/", f"dynamodb://{r.exports['indexTable']}")
        live = index.query(TENANT, 0, MAX_TIME_MS)
        assert live and all(e.level > 0 for e in live), "compaction left live L0 segments"
        window = parse_window("last-day", now_ms=now_ms).name
        analysis = boto3.client("s3").list_objects_v2(Bucket=r.exports["analysisBucket"], Prefix=f"analysis/{TENANT}/{window}/")
        assert f"analysis/{TENANT}/{window}/summary.json" in {o["Key"] for o in analysis.get("Contents", [])}
        messages = boto3.client("sqs").receive_message(QueueUrl=seeded["inbox"], MaxNumberOfMessages=10,
                                                       WaitTimeSeconds=5).get("Messages", [])
        (note,) = [json.loads(m["Body"]) for m in messages]
        assert (note["tenant"], note["window"]) == (TENANT, window)
        assert (PROBE, "re.compile", "up") in {(a["service"], a["function"], a["direction"]) for a in note["anomalies"]}
        every = index.query(TENANT, 0, MAX_TIME_MS, states=ALL_STATES)
        assert not [e for e in every if e.max_time_ms < seeded["expired_before"]], "retention kept expired segments"
        assert _metrics("JobSucceeded", started) == {"compact", "analyze", "retention"}
        assert _metrics("JobFailed", started) == set()

        # the jobs' spans reached the agents: the compaction and its Ray tasks in one trace
        spans = wait_for(lambda: got if _one_compaction_trace(got := _agent_spans(nodes)) else None, 30,
                         "compaction spans at the agents")
        (job,) = [s for s in spans if s["name"] == "job.compaction"]
        tasks = [s for s in spans if s["name"].startswith("task compact L")]
        assert job["parent_id"] == "" and {s["trace_id"] for s in tasks} == {job["trace_id"]}
        assert {s["parent_id"] for s in tasks} == {job["span_id"]}
        assert {s["service"] for s in [job, *tasks]} == {"fleetprof-workers"}
        assert {"job.analyze", "job.retention"} <= {s["name"] for s in spans}

        # the command the head used to schedule fails its unit in the same runner
        unit = (head.dirs["/etc"] / "systemd/system/fleetprof-analyze.service").read_text()
        old = "\n".join(f"ExecStart={OLD_ANALYZE}" if line.startswith("ExecStart=") else line for line in unit.splitlines())
        (head.dirs["/etc"] / "systemd/system/fleetprof-analyze-1h.service").write_text(old + "\n")
        rc, out = head.run("systemctl start fleetprof-analyze-1h.service", timeout=240)
        assert rc != 0, "the old analyze command succeeded"
        assert "bad window '1h'" in head.unit_log("fleetprof-analyze-1h.service")
        assert _metrics("JobFailed", started) == {"analyze"}
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e}\n{_diagnose(nodes)}") from e
    finally:
        for node in nodes:
            node.close()
