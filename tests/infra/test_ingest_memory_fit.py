"""The ingest limits each task runs with fit its memory (components.ingest_service.ingest_limits),
and reach the server under the names it reads."""

from __future__ import annotations

import json

import pytest
from infra_support import STACKS, one, rendered

from components.ingest_service import (
    BYTES_PER_FRAME,
    IDLE_RSS_MIB,
    MIN_FRAMES_PER_REQUEST,
    SMALL_PUSH_HEADROOM_MIB,
    ingest_limits,
)
from components.mockrun import render
from components.settings import SettingsError
from fleetprof.server.settings import Settings as ServerSettings


def _env(stack: str) -> dict[str, str]:
    task = one(rendered(stack), "aws:ecs/taskDefinition:TaskDefinition", "ingest-task")
    return {e["name"]: e["value"] for e in json.loads(task.inputs["containerDefinitions"])[0]["environment"]}


@pytest.mark.parametrize("name", STACKS)
def test_worst_accepted_requests_fit_the_task(name):
    memory = rendered(name).program["settings"].server_memory  # the task's, less the collector sidecar's
    server = ServerSettings.load(env=_env(name))
    worst = server.large_decode_slots * server.max_frames_per_request * BYTES_PER_FRAME / 2**20
    assert IDLE_RSS_MIB + SMALL_PUSH_HEADROOM_MIB + worst <= memory
    assert server.large_decode_slots >= 1 and server.max_frames_per_request >= MIN_FRAMES_PER_REQUEST
    assert ingest_limits(memory) == {"large_decode_slots": server.large_decode_slots,
                                     "max_frames_per_request": server.max_frames_per_request}


def test_server_defaults_would_not_fit_a_small_task():
    defaults = ServerSettings.load(env={})
    worst = defaults.large_decode_slots * defaults.max_frames_per_request * BYTES_PER_FRAME / 2**20
    assert IDLE_RSS_MIB + SMALL_PUSH_HEADROOM_MIB + worst > 1024  # why the task sets its own limits


def test_too_little_memory_is_refused_naming_the_key():
    with pytest.raises(SettingsError, match="fleetprof:taskMemory: 512 MiB leaves room for"):
        render("dev", overrides={"fleetprof:taskMemory": 512})
