"""Scaling of the ingest service and the Ray workers: the requests-per-target target derived
from measured capacity, predictive scaling by config, the nightly worker floor."""

from __future__ import annotations

import pytest
from infra_support import STACKS, one, rendered

from components.ingest_service import predictive_cpu_configuration, requests_per_target_per_minute
from components.mockrun import render
from components.ray_cluster import NightlyWindow, ScheduledJob, daily_minute, nightly_windows
from components.settings import SettingsError

T_APP_POLICY = "aws:appautoscaling/policy:Policy"
T_ASG_POLICY = "aws:autoscaling/policy:Policy"
T_SCHEDULE = "aws:autoscaling/schedule:Schedule"


def test_requests_target_is_measured_capacity_at_the_cpu_target():
    # 1169 pushes per CPU-second, 0.5 vCPU, 60 % -> 350.7 pushes/s per task -> 21042 per minute
    assert requests_per_target_per_minute(1169, 512, 60) == 21042
    assert requests_per_target_per_minute(1169, 1024, 55) == 38577
    assert requests_per_target_per_minute(1000, 256, 1) == 150


@pytest.mark.parametrize("bad", [(0, 512, 60), (1169, 0, 60), (1169, 512, 0), (1169, 512, 101)])
def test_requests_target_refuses_meaningless_inputs(bad):
    with pytest.raises(ValueError, match="positive capacity"):
        requests_per_target_per_minute(*bad)


@pytest.mark.parametrize("name", STACKS)
def test_request_scaling_fires_at_the_same_utilisation_as_cpu_scaling(name):
    """At the request target a task runs at the CPU target (within rounding), so neither
    policy scales out long before the other (a fixed 1000/min did at ~3 % CPU)."""
    r = rendered(name)
    s = r.program["settings"]
    target = one(r, T_APP_POLICY, "ingest-scale-requests").inputs["targetTrackingScalingPolicyConfiguration"]["targetValue"]
    per_second_capacity = s.ingest_pushes_per_cpu_second * s.task_cpu / 1024
    utilisation = target / 60 / per_second_capacity * 100
    assert abs(utilisation - s.cpu_target_percent) < 0.1


@pytest.mark.parametrize(("name", "mode"), [("dev", None), ("staging", "ForecastOnly"), ("prod", "ForecastAndScale")])
def test_predictive_scaling_by_config_next_to_target_tracking(name, mode):
    r = rendered(name)
    types = sorted(p.inputs["policyType"] for p in r.of_type(T_APP_POLICY))
    asg_types = sorted(p.inputs.get("policyType") for p in r.of_type(T_ASG_POLICY))
    if mode is None:
        assert types == ["TargetTrackingScaling"] * 2 and asg_types == ["TargetTrackingScaling"]
        return
    assert types == ["PredictiveScaling", "TargetTrackingScaling", "TargetTrackingScaling"]
    assert asg_types == ["PredictiveScaling", "TargetTrackingScaling"]
    ecs = one(r, T_APP_POLICY, "ingest-scale-predictive").inputs["predictiveScalingPolicyConfiguration"]
    (spec,) = ecs["metricSpecifications"]
    assert ecs["mode"] == mode and spec["predefinedMetricPairSpecification"] == {"predefinedMetricType": "ECSServiceCPUUtilization"}
    assert spec["targetValue"] == str(r.program["settings"].cpu_target_percent)
    asg = one(r, T_ASG_POLICY, "ray-workers-predictive").inputs
    assert asg["autoscalingGroupName"] == one(r, "aws:autoscaling/group:Group", "ray-workers").outputs["name"]
    ray = asg["predictiveScalingConfiguration"]
    assert ray["mode"] == mode and ray["metricSpecification"]["predefinedMetricPairSpecification"]["predefinedMetricType"] == "ASGCPUUtilization"


def test_predictive_configuration_shapes():
    assert predictive_cpu_configuration("ForecastOnly", 55)["metric_specifications"][0]["target_value"] == "55"


def test_unknown_predictive_mode_is_refused():
    with pytest.raises(SettingsError, match="predictiveScaling must be one of off, ForecastOnly, ForecastAndScale"):
        render("dev", overrides={"fleetprof:predictiveScaling": "on"})


@pytest.mark.parametrize(
    ("expr", "minute"),
    [("daily", 0), ("02:30", 150), ("*-*-* 23:05:00", 1385), ("hourly", None), ("*:0/15", None), ("25:00", None)],
)
def test_daily_minute(expr, minute):
    assert daily_minute(expr) == minute


def test_nightly_windows_merge_overlapping_daily_jobs():
    jobs = [
        ScheduledJob("compact", "c", "*:0/15"),
        ScheduledJob("analyze", "a", "daily"),
        ScheduledJob("retention", "r", "01:00"),
        ScheduledJob("backfill", "b", "12:00"),
    ]
    assert nightly_windows(jobs, 120) == [NightlyWindow(-15, 180), NightlyWindow(705, 840)]
    assert NightlyWindow.cron(-15) == "45 23 * * *" and NightlyWindow.cron(180) == "0 3 * * *"
    assert nightly_windows(jobs[:1], 120) == []


@pytest.mark.parametrize("name", STACKS)
def test_nightly_floor_around_the_daily_jobs(name):
    r = rendered(name)
    s = r.program["settings"]
    schedules = {x.name: x.inputs for x in r.of_type(T_SCHEDULE)}
    if s.ray_nightly_workers <= s.ray_worker_min:
        assert schedules == {}
        return
    up, down = schedules["ray-nightly-0-up"], schedules["ray-nightly-0-down"]
    # the retention job runs daily at 00:00 UTC: the floor rises 15 minutes before it
    assert (up["recurrence"], up["minSize"], up["timeZone"]) == ("45 23 * * *", s.ray_nightly_workers, "Etc/UTC")
    assert (down["recurrence"], down["minSize"]) == ("0 2 * * *", s.ray_worker_min)
    assert up["maxSize"] == down["maxSize"] == s.ray_worker_max


def test_nightly_workers_above_the_group_maximum_are_refused():
    with pytest.raises(SettingsError, match="rayNightlyWorkers must be 0..rayWorkerMax"):
        render("dev", overrides={"fleetprof:rayNightlyWorkers": 3})
