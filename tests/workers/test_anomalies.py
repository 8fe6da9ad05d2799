"""Anomalies over time: a function whose share jumps in one bucket is flagged with its
baseline; a stable fleet flags nothing; notifications reach an SNS topic (moto server)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from workers import analysis, synth
from workers.anomalies import anomalies, notify_anomalies
from workers.dataset import from_items

T0 = 1_795_132_800_000
HOUR = 3_600_000
STEP = 60_000
BASE = {"main;api.handler;json.dumps": 0.30, "main;api.handler;db.query": 0.40, "main;api.handler;compute": 0.30}
SPIKE = {**BASE, "main;api.handler;re.compile": 0.25}


def fleet(spike_at: int | None, seed: int = 5) -> list:
    """Two hours of 1-minute profiles of two instances (previous + analysed window)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(120):
        t = T0 - HOUR + k * STEP
        for inst in ("a", "b"):
            shares = SPIKE if spike_at is not None and spike_at <= t < spike_at + 5 * STEP else BASE
            out.append(synth.ingest_item({"service_name": "api", "instance": inst}, synth.CPU, t,
                                         synth.profile_from_stacks(synth._split(60 * 10**9, shares, rng, 0.04), synth.CPU)))
    return out


def split(items: list):
    ds = from_items(items)
    return ds.filter_samples(pl.col("time_ms") >= T0), ds.filter_samples(pl.col("time_ms") < T0)


def test_spike_flagged_with_baseline_and_nothing_else() -> None:
    cur, prev = split(fleet(T0 + 35 * STEP))  # the 8th 5-minute bucket of the window
    a = anomalies(cur, prev, synth.CPU, T0, T0 + HOUR, analysis.AnalysisConfig(), tenant="acme")
    assert set(a.select("function", "bucket_start_ms", "direction").iter_rows()) == {("re.compile", T0 + 35 * STEP, "up")}
    row = a.row(0, named=True)
    assert row["share"] == pytest.approx(0.25 / 1.25, abs=0.02)
    assert row["baseline_median"] == 0.0 and row["baseline_buckets"] == 12
    assert "baseline median 0.0%" in row["evidence"]
    assert "tenant=acme" in row["flamegraph_url"] and f"from={T0 + 35 * STEP}" in row["flamegraph_url"]


def test_stable_fleet_flags_nothing() -> None:
    cur, prev = split(fleet(None))
    assert anomalies(cur, prev, synth.CPU, T0, T0 + HOUR, analysis.AnalysisConfig()).height == 0


def test_analysis_tables_and_summary_carry_anomalies() -> None:
    cur, prev = split(fleet(T0 + 35 * STEP))
    r = analysis.analyze_dataset(cur, prev, tenant="t", window="w", previous_window="p", start_ms=T0, end_ms=T0 + HOUR)
    assert r.tables["anomalies"].height == 1
    assert [(x["function"], x["direction"]) for x in r.summary["anomalies"]] == [("re.compile", "up")]


def test_notify_on_sns(moto_endpoint: str) -> None:
    import boto3

    kw = {"endpoint_url": moto_endpoint, "region_name": "us-east-1", "aws_access_key_id": "k", "aws_secret_access_key": "s"}
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    topic = sns.create_topic(Name="fleetprof-anomalies")["TopicArn"]
    q = sqs.create_queue(QueueName="anomaly-inbox")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})
    cur, prev = split(fleet(T0 + 35 * STEP))
    table = anomalies(cur, prev, synth.CPU, T0, T0 + HOUR, analysis.AnalysisConfig())
    assert notify_anomalies(table.head(0), tenant="t", window="w", topic_arn=topic, client=sns) is None
    assert notify_anomalies(table, tenant="t", window="w", topic_arn=None, client=sns) is None  # no topic configured
    mid = notify_anomalies(table, tenant="t", window="2026-11-20T10", topic_arn=topic, client=sns)
    assert mid
    msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    body = json.loads(msgs[0]["Body"])
    assert body["window"] == "2026-11-20T10" and body["count"] == 1
    assert body["anomalies"][0]["function"] == "re.compile" and body["anomalies"][0]["direction"] == "up"


def test_notify_reads_the_region_the_nodes_set(moto_endpoint: str, monkeypatch, tmp_path) -> None:
    """The Ray nodes' environment names the region as AWS_REGION only (no IMDS to fall back on here)."""
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k",
                       "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    sns = boto3.client("sns", region_name="eu-west-1")
    topic = sns.create_topic(Name="fleetprof-anomalies-region")["TopicArn"]
    monkeypatch.setenv("FLEETPROF_ANOMALY_TOPIC_ARN", topic)
    cur, prev = split(fleet(T0 + 35 * STEP))
    table = anomalies(cur, prev, synth.CPU, T0, T0 + HOUR, analysis.AnalysisConfig())
    assert notify_anomalies(table, tenant="t", window="w")


@pytest.fixture
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
