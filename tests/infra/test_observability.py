"""Observability: the rendered alarms modelled as CloudWatch evaluates them.

Checks (each with a failing case):

* every alarm notifies the topic (alarm and OK), except ECS deployment-rollback alarms;
* CloudWatch accepts each alarm's period and evaluation range;
* the DynamoDB throttle alarm covers every operation the index issues (the operations are
  read from ``fleetprof/metastore``), as CloudWatch keys throttle metrics;
* the job alarms watch exactly the metrics ``workers.job_metrics`` publishes (published to a
  moto CloudWatch, found again with ``list_metrics``), and under a model of CloudWatch's
  evaluation the missing-compaction alarm stays quiet while compaction runs (even one slow
  run) and fires once it stops;
* every metric an alarm watches is on the dashboard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pulumi
import pytest
from infra_support import ROOT, STACKS, one, rendered

from components.mockrun import Rendering
from components.settings import (
    L0_SETTLED_AGE_MINUTES,
    Settings,
    SettingsError,
    calendar_interval_minutes,
)
from workers import job_metrics

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
TABLE = "aws:dynamodb/table:Table"
SERVICE = "aws:ecs/service:Service"
DAY_S = 86_400

Metric = tuple[str, str, frozenset[tuple[str, str]]]
"""(namespace, metric name, dimensions) of a CloudWatch metric."""


def alarms(r: Rendering) -> dict[str, dict[str, Any]]:
    return {a.name: a.inputs for a in r.of_type(ALARM)}


def metric(namespace: str, name: str, dims: Mapping[str, str]) -> Metric:
    return namespace, name, frozenset(dims.items())


def watched_metrics(alarm: Mapping[str, Any]) -> list[Metric]:
    """The metrics an alarm reads: its single metric, or the metric queries its returned
    expression references."""
    if alarm.get("metricName"):
        return [metric(alarm["namespace"], alarm["metricName"], alarm.get("dimensions") or {})]
    queries = alarm.get("metricQueries") or []
    expr = " ".join(q.get("expression", "") for q in queries if q.get("returnData"))
    used = set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", expr))
    return [metric(q["metric"]["namespace"], q["metric"]["metricName"], q["metric"].get("dimensions") or {})
            for q in queries if "metric" in q and q["id"] in used]


# --- notification ------------------------------------------------------------------------


COVERING_METRICS = {"StatusCheckFailed_System": "StatusCheckFailed", "StatusCheckFailed_Instance": "StatusCheckFailed"}
"""CloudWatch metrics that count a failure another metric counts too (EC2: either check)."""


def action_only_alarm(r: Rendering, a: Any) -> bool:
    """An alarm that drives an automated action instead of notifying: an ECS deployment
    rollback alarm, or one whose actions are EC2 automate actions (recover, reboot)."""
    rollback = {n for s in r.of_type(SERVICE) for n in ((s.inputs.get("alarms") or {}).get("alarmNames") or [])}
    actions = a.inputs.get("alarmActions") or []
    return a.outputs.get("name") in rollback or (bool(actions) and all(":automate:" in x for x in actions))


def covering(m: Metric) -> Metric:
    return m[0], COVERING_METRICS.get(m[1], m[1]), m[2]


def silent_alarms(r: Rendering, topic_arn: str, *, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Alarms whose condition reaches nobody: alarms that do not notify ``topic_arn`` on both
    ALARM and OK, except action-only alarms (:func:`action_only_alarm`) whose metric, or a
    metric counting the same failures, a notifying alarm watches on the same dimensions.
    ``overrides`` replaces some alarms' inputs."""

    def inputs(a: Any) -> Mapping[str, Any]:
        return (overrides or {}).get(a.name, a.inputs)

    def notifies(a: Any) -> bool:
        i = inputs(a)
        return topic_arn in (i.get("alarmActions") or []) and topic_arn in (i.get("okActions") or [])

    notified = {covering(m) for a in r.of_type(ALARM) if notifies(a) for m in watched_metrics(inputs(a))}
    out = []
    for a in r.of_type(ALARM):
        if notifies(a):
            continue
        if action_only_alarm(r, a) and all(covering(m) in notified for m in watched_metrics(inputs(a))):
            continue
        out.append(a.name)
    return sorted(out)


def test_every_alarm_notifies_the_topic(stack: Rendering) -> None:
    assert silent_alarms(stack, stack.exports["alarmTopicArn"]) == []


def test_silent_alarm_is_reported() -> None:
    r = rendered("dev")
    broken = {"observability-l0-backlog": alarms(r)["observability-l0-backlog"] | {"okActions": None}}
    assert silent_alarms(r, r.exports["alarmTopicArn"], overrides=broken) == ["observability-l0-backlog"]


def test_action_only_alarm_without_a_notifying_twin_is_reported() -> None:
    r = rendered("dev")
    a = alarms(r)
    head_status = a["observability-ray-head-status"]
    assert silent_alarms(r, r.exports["alarmTopicArn"]) == []
    unwatched = {"observability-ray-head-status": head_status | {"alarmActions": [], "okActions": []}}
    silent = silent_alarms(r, r.exports["alarmTopicArn"], overrides=unwatched)
    assert "observability-ray-head-status" in silent
    action_only = [n for n, i in a.items() if any(":automate:" in x for x in i.get("alarmActions") or [])]
    assert set(action_only) <= set(silent)  # their notifying twin is gone


# --- CloudWatch's limits -------------------------------------------------------------------


def rejected_by_cloudwatch(alarm: Mapping[str, Any]) -> list[str]:
    """Why CloudWatch's PutMetricAlarm would refuse the alarm's period/evaluation range."""
    periods = [alarm["period"]] if alarm.get("period") else [
        q["metric"]["period"] for q in alarm.get("metricQueries") or [] if "metric" in q]
    errors = []
    for p in periods:
        if not (p in (10, 30) or (p >= 60 and p % 60 == 0)):
            errors.append(f"period {p} is not 10, 30 or a multiple of 60")
        limit = 7 * DAY_S if p >= 3600 else DAY_S
        if p * alarm["evaluationPeriods"] > limit:
            errors.append(f"evaluation range {p}s x {alarm['evaluationPeriods']} exceeds {limit}s")
    if alarm.get("datapointsToAlarm", alarm["evaluationPeriods"]) > alarm["evaluationPeriods"]:
        errors.append("datapointsToAlarm > evaluationPeriods")
    return errors


def test_cloudwatch_accepts_every_alarm(stack: Rendering) -> None:
    assert {n: e for n, a in alarms(stack).items() if (e := rejected_by_cloudwatch(a))} == {}


@pytest.mark.parametrize(("change", "needle"), [({"period": 90}, "multiple of 60"),
                                                 ({"period": 3000, "evaluationPeriods": 30}, "exceeds 86400")])
def test_cloudwatch_limits_are_modelled(change: dict, needle: str) -> None:
    alarm = alarms(rendered("prod"))["observability-compact-not-succeeding"] | change
    assert any(needle in e for e in rejected_by_cloudwatch(alarm))


# --- thresholds from config ------------------------------------------------------------------


def test_alarms_use_config_thresholds(stack: Rendering) -> None:
    s: Settings = stack.program["settings"]
    a = alarms(stack)
    assert a["observability-ecs-cpu"]["threshold"] == s.alarm_cpu_percent
    assert a["observability-ecs-memory"]["metricName"] == "MemoryUtilization"
    assert a["observability-ecs-memory"]["threshold"] == s.alarm_memory_percent
    assert a["observability-dynamodb-throttles"]["threshold"] == s.alarm_throttle_threshold
    assert a["observability-l0-backlog"]["threshold"] == s.alarm_l0_backlog_minutes * 60


def test_prod_memory_threshold_is_its_own() -> None:
    s: Settings = rendered("prod").program["settings"]
    assert s.alarm_memory_percent != s.alarm_cpu_percent
    a = alarms(rendered("prod"))
    assert a["observability-ecs-memory"]["threshold"] != a["observability-ecs-cpu"]["threshold"]


# --- DynamoDB throttles ------------------------------------------------------------------------

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
CONTROL = {"DescribeTable"}
"""Control-plane calls: not throttled by table capacity."""


def index_operations() -> set[str]:
    """DynamoDB API operations the metastore issues (its ``_call("<method>", …)`` sites)."""
    import botocore.session

    api = botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).meta.method_to_api_mapping
    methods: set[str] = set()
    for path in sorted((ROOT / "fleetprof" / "metastore").glob("*.py")):
        methods |= set(re.findall(r"""_call\(\s*["'](\w+)["']""", path.read_text()))
    return {api[m] for m in methods}


def uncovered_operations(watched: Iterable[Metric], table: str, gsis: Sequence[str], ops: Iterable[str]) -> list[str]:
    """Operations whose throttles none of ``watched`` counts. CloudWatch counts a throttle in
    ``ThrottledRequests`` with the request's ``Operation`` and in ``Read/WriteThrottleEvents``
    of the table (reads and writes) and of each GSI the write maintains (writes)."""
    w = set(watched)
    table_dims = {("TableName", table)}
    out = []
    for op in sorted(ops):
        if op in CONTROL:
            continue
        if op not in READS | WRITES:
            out.append(f"{op} (unclassified)")
            continue
        if metric("AWS/DynamoDB", "ThrottledRequests", {"TableName": table, "Operation": op}) in w:
            continue
        kind = "ReadThrottleEvents" if op in READS else "WriteThrottleEvents"
        needed = [("AWS/DynamoDB", kind, frozenset(table_dims))]
        if op in WRITES:
            needed += [metric("AWS/DynamoDB", kind, {"TableName": table, "GlobalSecondaryIndexName": g}) for g in gsis]
        if not all(n in w for n in needed):
            out.append(op)
    return out


def _table(r: Rendering) -> tuple[str, list[str]]:
    t = one(r, TABLE, "storage-index")
    return t.outputs.get("name") or t.inputs["name"], [g["name"] for g in t.inputs["globalSecondaryIndexes"]]


def test_index_operations_are_read_from_the_metastore() -> None:
    assert {"TransactWriteItems", "UpdateItem", "PutItem", "Query", "GetItem", "DeleteItem"} <= index_operations()


def test_throttle_alarm_covers_every_index_operation(stack: Rendering) -> None:
    table, gsis = _table(stack)
    watched = watched_metrics(alarms(stack)["observability-dynamodb-throttles"])
    assert uncovered_operations(watched, table, gsis, index_operations()) == []


def test_putitem_only_throttle_alarm_leaves_operations_uncovered() -> None:
    table, gsis = _table(rendered("dev"))
    put_only = [metric("AWS/DynamoDB", "ThrottledRequests", {"TableName": table, "Operation": "PutItem"})]
    missing = uncovered_operations(put_only, table, gsis, index_operations())
    assert {"TransactWriteItems", "UpdateItem", "DeleteItem", "Query", "GetItem"} <= set(missing)
    assert uncovered_operations([], table, gsis, {"ExecuteStatement"}) == ["ExecuteStatement (unclassified)"]
    table_only = [metric("AWS/DynamoDB", m, {"TableName": table}) for m in ("ReadThrottleEvents", "WriteThrottleEvents")]
    assert "TransactWriteItems" in uncovered_operations(table_only, table, gsis, {"TransactWriteItems"})  # GSI writes


# --- job metrics: the contract with the publisher --------------------------------------------


def job_alarm_names() -> list[str]:
    return [f"observability-job-failed-{j}" for j in job_metrics.JOBS] + [
        "observability-compact-not-succeeding", "observability-l0-backlog"]


def test_job_alarms_watch_what_the_jobs_publish(stack: Rendering, moto_server: str) -> None:
    from fleetprof.storage.aws import client

    env = stack.program["settings"].environment
    data = [job_metrics.job_status_datum(j, s, env) for j in job_metrics.JOBS for s in job_metrics.STATUS_METRIC]
    data += [job_metrics.Datum(job_metrics.L0_SEGMENTS, 3, "Count", {"Environment": env}),
             job_metrics.Datum(job_metrics.OLDEST_L0_AGE, 60, "Seconds", {"Environment": env})]
    job_metrics.publish(data)
    cw = client("cloudwatch")
    a = alarms(stack)
    for name in job_alarm_names():
        ((ns, mname, dims),) = watched_metrics(a[name])
        found = cw.list_metrics(Namespace=ns, MetricName=mname,
                                Dimensions=[{"Name": k, "Value": v} for k, v in sorted(dims)])["Metrics"]
        assert [{d["Name"]: d["Value"] for d in m["Dimensions"]} for m in found] == [dict(dims)], name
        assert a[name]["alarmActions"] == [stack.exports["alarmTopicArn"]]


def test_job_failed_alarms_fire_on_one_failure(stack: Rendering) -> None:
    for job in job_metrics.JOBS:
        a = alarms(stack)[f"observability-job-failed-{job}"]
        assert fires(a, [(100, 1.0)], at=a["period"] + 1) and not fires(a, [], at=a["period"] + 1)


# --- a model of CloudWatch's alarm evaluation -------------------------------------------------


def _breaches(alarm: Mapping[str, Any], value: float) -> bool:
    t = alarm["threshold"]
    return {"GreaterThanThreshold": value > t, "GreaterThanOrEqualToThreshold": value >= t,
            "LessThanThreshold": value < t, "LessThanOrEqualToThreshold": value <= t}[alarm["comparisonOperator"]]


def fires(alarm: Mapping[str, Any], points: Sequence[tuple[float, float]], at: float) -> bool:
    """Whether a single-metric alarm is in ALARM at time ``at`` (s) given data ``points``
    ``(time s, value)``: the last ``evaluationPeriods`` complete periods (aligned to the
    period) are aggregated with the statistic; an alarm needs ``datapointsToAlarm`` breaching
    periods; missing periods count per ``treatMissingData`` (``ignore``/``missing``: skipped)."""
    period, n = alarm["period"], int(alarm["evaluationPeriods"])
    needed = int(alarm.get("datapointsToAlarm") or n)
    last_end = at - at % period
    agg = {"Sum": sum, "Maximum": max, "Minimum": min, "Average": lambda v: sum(v) / len(v)}[alarm["statistic"]]
    breaching = evaluated = 0
    for k in range(n):
        start = last_end - (k + 1) * period
        values = [v for t, v in points if start <= t < start + period]
        if values:
            evaluated += 1
            breaching += _breaches(alarm, agg(values))
        elif alarm["treatMissingData"] == "breaching":
            evaluated += 1
            breaching += 1
        elif alarm["treatMissingData"] == "notBreaching":
            evaluated += 1
    return evaluated > 0 and breaching >= min(needed, evaluated)


def compaction_successes(interval_s: int, runtimes_s: Sequence[float], start: float = 0.0) -> list[tuple[float, float]]:
    """``JobSucceeded`` points of a systemd timer every ``interval_s`` whose runs take
    ``runtimes_s`` in turn; a trigger while the previous run is still active is skipped."""
    points, busy_until, t = [], -1.0, start
    for rt in runtimes_s:
        while t < busy_until:
            t += interval_s
        busy_until = t + rt
        points.append((busy_until, 1.0))
        t += interval_s
    return points


@pytest.mark.parametrize("name", STACKS)
def test_missing_compaction_alarm_quiet_while_running_fires_when_stopped(name: str) -> None:
    r = rendered(name)
    interval = r.program["settings"].compact_interval_minutes * 60
    alarm = alarms(r)["observability-compact-not-succeeding"]
    runs = [0.1 * interval] * 20 + [1.3 * interval] + [0.9 * interval] * 20  # one slow run, then long ones
    points = compaction_successes(interval, runs)
    end = points[-1][0]
    quiet = [t for t in range(int(2 * interval), int(end), 60) if fires(alarm, points, t)]
    assert quiet == []
    stopped_at = end + 3 * interval + alarm["period"]
    assert fires(alarm, points, stopped_at)


def test_one_period_missing_compaction_alarm_would_page_on_a_slow_run() -> None:
    r = rendered("staging")
    interval = r.program["settings"].compact_interval_minutes * 60
    alarm = alarms(r)["observability-compact-not-succeeding"] | {"evaluationPeriods": 1}
    points = compaction_successes(interval, [0.1 * interval] * 4 + [1.3 * interval] + [0.1 * interval] * 4)
    assert any(fires(alarm, points, t) for t in range(0, int(points[-1][0]), 60))


@pytest.mark.parametrize("name", STACKS)
def test_l0_backlog_alarm_fires_only_above_the_threshold(name: str) -> None:
    r = rendered(name)
    s: Settings = r.program["settings"]
    alarm = alarms(r)["observability-l0-backlog"]
    interval = s.compact_interval_minutes * 60
    normal = (L0_SETTLED_AGE_MINUTES * 60 + interval) * 0.99  # the oldest L0 just before its compaction
    at = 10 * alarm["period"]
    assert not fires(alarm, [(at - alarm["period"] / 2, normal)], at)
    assert fires(alarm, [(at - alarm["period"] / 2, s.alarm_l0_backlog_minutes * 60 + 1)], at)


def test_settled_age_matches_the_compactor() -> None:
    from workers.compact import HOUR_MS, SETTLE_MS

    assert L0_SETTLED_AGE_MINUTES * 60_000 == HOUR_MS + SETTLE_MS[1]


# --- dashboard ----------------------------------------------------------------------------------


def dashboard_metrics(body: str) -> set[Metric]:
    """Metrics of the dashboard's widgets (CloudWatch's ``[ns, name, k, v, …, {opts}]`` rows)."""
    out = set()
    for w in json.loads(body)["widgets"]:
        for row in w["properties"].get("metrics", []):
            parts = [x for x in row if not isinstance(x, dict)]
            out.add(metric(parts[0], parts[1], dict(zip(parts[2::2], parts[3::2], strict=True))))
    return out


def alarmed_but_not_shown(r: Rendering, body: str) -> list[str]:
    shown = dashboard_metrics(body)
    return sorted(f"{n}: {m[1]}" for n, a in alarms(r).items() for m in watched_metrics(a) if m not in shown)


def _body(r: Rendering) -> str:
    return one(r, DASHBOARD, "observability-dashboard").inputs["dashboardBody"]


def test_dashboard_shows_every_alarmed_metric(stack: Rendering) -> None:
    assert alarmed_but_not_shown(stack, _body(stack)) == []
    env = stack.program["settings"].environment
    shown = dashboard_metrics(_body(stack))
    assert metric(job_metrics.NAMESPACE, "L0Segments", {"Environment": env}) in shown


def test_dashboard_without_the_jobs_panel_is_reported() -> None:
    r = rendered("prod")
    body = json.loads(_body(r))
    body["widgets"] = [w for w in body["widgets"] if "jobs" not in w["properties"]["title"].lower()]
    missing = alarmed_but_not_shown(r, json.dumps(body))
    assert "observability-job-failed-compact: JobFailed" in missing


@pulumi.runtime.test
def test_dashboard_url_is_exported(stack: Rendering):
    return stack.program["observability"].dashboard_url.apply(lambda u: _check(u == stack.exports["dashboardUrl"]))


def _check(cond: bool) -> None:
    assert cond


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "minutes"), [("hourly", 60), ("daily", 1440), ("*:0/15", 15), ("*:0/10", 10),
                                                ("*:30", 60), ("*-*-* *:00/5:00", 5), ("03:30", 1440)])
def test_calendar_interval(expr: str, minutes: int) -> None:
    assert calendar_interval_minutes(expr) == minutes


@pytest.mark.parametrize("expr", ["Mon *-*-* 00:00", "*:0/7", "*:20/15", "weekly-ish"])
def test_calendar_interval_rejects_what_it_cannot_derive(expr: str) -> None:
    with pytest.raises(ValueError, match="OnCalendar"):
        calendar_interval_minutes(expr)


_BASE = dict(environment="t", region="us-east-1", certificate_arn="arn:aws:acm:us-east-1:1:certificate/x",
             ray_ami_id="ami-0123456789abcdef0")


@pytest.mark.parametrize(("changes", "key"), [
    ({"alarm_l0_backlog_minutes": 80}, "alarmL0BacklogMinutes"),  # 65 + 15 does not exceed 80
    ({"compact_schedule": "hourly", "alarm_l0_backlog_minutes": 120}, "alarmL0BacklogMinutes"),
    ({"compact_schedule": "Mon 00:00"}, "compactSchedule"),
    ({"alarm_memory_percent": 0}, "alarmMemoryPercent"),
    ({"alarm_cpu_percent": 101}, "alarmCpuPercent"),
])
def test_settings_reject_bad_observability_config(changes: dict, key: str) -> None:
    assert Settings(**_BASE).validate()
    with pytest.raises(SettingsError, match=key):
        Settings(**(_BASE | changes)).validate()
