"""End-to-end orchestrator scenarios: moto (S3, DynamoDB, CloudWatch), a real fleetprof
server as every stack's URL, a local deployer and a fake clock (bakes take no time)."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from release_support import Env, excerpt, release

from fleetprof.release.clock import FakeClock
from fleetprof.release.events import summary_table
from fleetprof.release.pipeline import parse_pipeline

WAVES = ("dev", "staging", "prod-1", "prod-2")


def promote(env: Env, version: str) -> None:
    code, log = env.run(version)
    assert code == 0, excerpt(log)
    env.clock.advance(60)


def test_clean_promotion_through_all_waves(env: Env) -> None:
    code, log = env.run("v1")
    print("\n" + excerpt(log))
    assert code == 0, excerpt(log)
    for stack in ("dev", "staging", "prod-use1", "prod-euw1", "prod-apse2"):
        assert env.deployer.versions(stack) == ["v1"]
        st = env.state.stack_state(stack)
        assert st.last_good["version"] == "v1" and st.current is None
        assert st.last_good["config"]["fleetprof:imageUri"] == release("v1").image
        assert env.state.lock_info(stack) is None
    kinds = log.kinds()
    assert [e["wave"] for e in log.events if e["kind"] == "wave.promoted"] == list(WAVES)
    assert kinds.count("approval.passed") == 3  # smoke on dev; smoke + load on staging
    assert "bake.profiles_ok" in kinds and kinds[-1] == "run.end"
    # the log is in S3 as well, identical
    assert env.state.read_events(log.run_id) == log.events
    # a second release replaces the first everywhere; a rerun of it changes nothing
    env.clock.advance(60)
    promote(env, "v2")
    code, log = env.run("v2")
    assert code == 0 and log.kinds().count("wave.skipped") == 4
    assert env.deployer.versions("prod-apse2") == ["v1", "v2"]


def test_alarm_during_bake_rolls_back_and_stops(env: Env) -> None:
    promote(env, "v1")

    def alarm(step: str, wave: str) -> None:
        if (step, wave) == ("approved", "staging"):
            env.set_alarm("staging", "ALARM")

    code, log = env.run("v2", after_step=alarm)
    print("\n" + excerpt(log))
    assert code == 1
    assert env.deployer.versions("staging") == ["v1", "v2", "v1"]  # re-applied the last good release
    assert env.deployer.versions("prod-use1") == ["v1"]  # promotion stopped
    assert env.deployer.stack_config("staging")["fleetprof:imageUri"] == release("v1").image
    st = env.state.stack_state("staging")
    assert st.last_good["version"] == "v1" and "v2" in st.rejected and st.current is None
    kinds = log.kinds()
    assert kinds.index("bake.alarm") < kinds.index("rollback.done") < kinds.index("promotion.stopped")
    assert "observability-alb-5xx" in next(e for e in log.events if e["kind"] == "bake.alarm")["message"]
    # the rejected version never goes out again
    env.set_alarm("staging", "OK")
    code, log = env.run("v2")
    assert code == 1 and "wave.rejected" in log.kinds() and env.deployer.versions("staging") == ["v1", "v2", "v1"]


def test_profile_regression_rolls_back_naming_the_culprit(env: Env) -> None:
    promote(env, "v1")
    code, log = env.run("v2", hot="json_dumps_slow")
    print("\n" + excerpt(log))
    assert code == 1
    ev = next(e for e in log.events if e["kind"] == "bake.profile_regression")
    assert "json_dumps_slow" in ev["message"]
    assert {c["function"] for c in ev["detail"]["culprits"]} >= {"json_dumps_slow"}
    assert env.deployer.versions("staging") == ["v1", "v2", "v1"]
    assert env.deployer.versions("prod-use1") == ["v1"]
    rows = [r for r in log.events if r["kind"] == "run.end"][0]["detail"]["outcomes"]
    assert rows == {"dev": "promoted", "staging": "rolled_back", "prod-1": "not_reached", "prod-2": "not_reached"}


def test_blocked_by_time_window_blackout_and_alarm(env: Env) -> None:
    # a window that excludes the clock's current hour, and a blackout covering today
    import datetime as dt

    now = dt.datetime.fromtimestamp(env.clock.now(), dt.UTC)
    start = (now + dt.timedelta(hours=2)).strftime("%H:00")
    end = "23:59" if start > "21:00" else (now + dt.timedelta(hours=3)).strftime("%H:00")
    if start >= end:
        start, end = "00:00", "00:01"
    doc = pipeline_doc_of(env)
    doc["stages"][0]["time_windows"] = [{"start": start, "end": end}]
    env.pipeline = parse_pipeline(doc)
    code, log = env.run("v1")
    print("\n" + excerpt(log))
    assert code == 3 and env.deployer.versions("dev") == []
    assert "outside the deploy windows" in next(e for e in log.events if e["kind"] == "blocker")["message"]
    assert env.state.lock_info("dev") is None
    doc["stages"][0]["time_windows"] = []
    doc["stages"][0]["blackouts"] = [{"start": now.date().isoformat(), "reason": "freeze"}]
    env.pipeline = parse_pipeline(doc)
    code, log = env.run("v1")
    assert code == 3 and "blackout" in next(e for e in log.events if e["kind"] == "blocker")["message"]
    doc["stages"][0]["blackouts"] = []
    env.pipeline = parse_pipeline(doc)
    env.set_alarm("dev", "ALARM")
    code, log = env.run("v1")
    assert code == 3 and "is in ALARM" in next(e for e in log.events if e["kind"] == "blocker")["message"]
    assert env.deployer.versions("dev") == []


def pipeline_doc_of(env: Env) -> dict:
    from release_support import pipeline_doc

    doc = pipeline_doc(env.pipeline.state.bucket, env.pipeline.state.table, env.url)
    doc["defaults"]["alarms"] = list(env.pipeline.waves[0].alarms)
    doc["stages"][1]["profile_bake"]["service"] = env.app
    return doc


def test_failed_up_rolls_back_to_last_good(env: Env) -> None:
    promote(env, "v1")
    env.deployer.fail["up:staging@v2"] = "ECS deployment circuit breaker tripped"
    code, log = env.run("v2")
    print("\n" + excerpt(log))
    assert code == 1
    assert env.deployer.versions("staging") == ["v1", "v1"]  # the failed up recorded nothing; v1 re-applied
    assert env.deployer.versions("dev") == ["v1", "v2"]  # dev keeps the version it promoted
    st = env.state.stack_state("staging")
    assert st.last_good["version"] == "v1" and "v2" in st.rejected
    assert "circuit breaker" in next(e for e in log.events if e["kind"] == "deploy.failed")["message"]


def test_two_versions_in_flight(env: Env) -> None:
    promote(env, "v1")
    baking, go_on = threading.Event(), threading.Event()

    def hold_in_prod(step: str, wave: str) -> None:
        if (step, wave) == ("approved", "prod-1"):
            baking.set()
            assert go_on.wait(60)

    # a lease longer than the other run's waves, so v2 keeps prod-1 while v3 moves
    env.state.cfg = dataclasses.replace(env.state.cfg, lock_lease_s=7200)
    results: dict[str, int] = {}
    clock2 = FakeClock(env.clock.now())
    t = threading.Thread(target=lambda: results.setdefault("v2", env.run("v2", after_step=hold_in_prod, clock=clock2)[0]))
    t.start()
    try:
        assert baking.wait(120)
        # v2 bakes in prod-1; v3 goes through dev and staging, then finds prod-1 locked by v2
        code, log = env.run("v3")
        print("\n" + excerpt(log))
        assert code == 3
        assert env.state.stack_state("prod-use1").current["version"] == "v2"
        assert env.state.stack_state("staging").last_good["version"] == "v3"
        busy = next(e for e in log.events if e["kind"] == "lock.busy")
        assert busy["wave"] == "prod-1" and "(v2)" in busy["message"]
    finally:
        go_on.set()
        t.join(120)
    assert results["v2"] == 0
    assert env.state.lock_info("prod-use1") is None  # v2 released it when done
    code, log = env.run("v3")
    assert code == 0, excerpt(log)
    assert env.deployer.versions("prod-use1") == ["v1", "v2", "v3"]
    assert env.deployer.versions("staging") == ["v1", "v2", "v3"]


class Crash(BaseException):
    """Stands for the process dying between two steps."""


def test_crash_mid_stage_resumes_without_deploying_twice(env: Env) -> None:
    promote(env, "v1")

    def crash(step: str, wave: str) -> None:
        if (step, wave) == ("deployed", "staging"):
            raise Crash

    with pytest.raises(Crash):
        env.run("v2", after_step=crash)
    st = env.state.stack_state("staging")
    assert st.current["version"] == "v2" and st.current["step"] == "deployed"
    env.clock.advance(10)
    code, log = env.run("v2")
    print("\n" + excerpt(log))
    assert code == 0, excerpt(log)
    assert env.deployer.versions("staging") == ["v1", "v2"]  # no second up
    assert env.deployer.versions("dev") == ["v1", "v2"]
    assert "wave.resume" in log.kinds() and log.kinds().count("wave.skipped") == 1


def test_lock_held_by_another_run(env: Env) -> None:
    promote(env, "v1")

    def other_run_takes_staging(step: str, wave: str) -> None:
        if (step, wave) == ("promoted", "dev"):
            assert env.state.acquire("staging", "someone-else", "v9")

    code, log = env.run("v2", after_step=other_run_takes_staging)
    print("\n" + excerpt(log))
    assert code == 3
    assert env.deployer.versions("staging") == ["v1"]
    assert env.state.lock_info("staging").owner == "someone-else"  # not taken over, not released
    # once the other run's lease runs out, the pipeline continues
    env.clock.advance(env.pipeline.state.lock_lease_s + 1)
    code, log = env.run("v2")
    assert code == 0, excerpt(log)


def test_summary_table_escapes_markup() -> None:
    from rich.console import Console

    c = Console(record=True, width=200)
    c.print(summary_table("v1", [{"stage": "beta", "wave": "dev", "stacks": "dev", "outcome": "rolled_back",
                                  "detail": "[bold]x[/bold] failed"}]))
    assert "[bold]x[/bold] failed" in c.export_text()


def test_load_below_threshold_rolls_back(env: Env) -> None:
    promote(env, "v1")
    doc = pipeline_doc_of(env)
    doc["stages"][1]["approvals"]["load"]["min_rate"] = 10**9  # a threshold no server meets
    env.pipeline = parse_pipeline(doc)
    code, log = env.run("v2")
    assert code == 1
    ev = next(e for e in log.events if e["kind"] == "approval.failed")
    assert ev["detail"]["workflow"] == "load" and "< min_rate" in ev["message"] and ev["detail"]["acked"] > 0
    assert env.deployer.versions("staging") == ["v1", "v2", "v1"]


def test_manual_promotion_waits_for_approval(env: Env) -> None:
    doc = pipeline_doc_of(env)
    doc["stages"][2]["promotion"] = "manual"
    env.pipeline = parse_pipeline(doc)
    code, log = env.run("v1")
    assert code == 0 and log.events[-1]["detail"]["outcomes"]["prod-1"] == "waiting"
    assert "promotion.awaiting_approval" in log.kinds() and env.deployer.versions("prod-use1") == []
    env.state.approve("prod-1", "v1", "oncall")
    code, log = env.run("v1")
    assert code == 0 and log.events[-1]["detail"]["outcomes"] == {
        "dev": "skipped", "staging": "skipped", "prod-1": "promoted", "prod-2": "waiting"}
    assert env.deployer.versions("prod-use1") == ["v1"]
