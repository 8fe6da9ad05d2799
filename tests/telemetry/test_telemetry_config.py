"""fleetprof.telemetry.config: when tracing is on and where spans go, from OTEL_* variables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fleetprof.telemetry.config import ConfigError, from_env, traces_endpoint


def test_off_without_an_endpoint() -> None:
    assert from_env("svc", {}) is None
    assert from_env("svc", {"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}) is None


@pytest.mark.parametrize(("env", "want"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base"}, "http://c:4318/base/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom"}, "http://t:1/custom"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"}, "http://t:1/x"),
])
def test_endpoint_rules(env: dict[str, str], want: str) -> None:
    assert traces_endpoint(env) == want
    cfg = from_env("svc", env)
    assert cfg is not None and cfg.endpoint == want and cfg.default_service == "svc"


@pytest.mark.parametrize("env", [
    {"OTEL_SDK_DISABLED": "true"},
    {"OTEL_SDK_DISABLED": "TRUE"},
    {"OTEL_TRACES_EXPORTER": "none"},
    {"OTEL_TRACES_EXPORTER": "console"},
])
def test_explicitly_off(env: dict[str, str]) -> None:
    assert from_env("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", **env}) is None


def test_sdk_disabled_false_keeps_it_on() -> None:
    assert from_env("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}) is not None


@pytest.mark.parametrize("env", [
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"},
])
def test_unservable_configurations_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        from_env("svc", env)


def test_setup_from_env_logs_and_stays_off_on_a_bad_configuration(caplog: pytest.LogCaptureFixture) -> None:
    from fleetprof import telemetry

    assert not telemetry.enabled()
    assert telemetry.setup_from_env("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) is False
    assert not telemetry.enabled()
    assert "grpc" in caplog.text


def test_off_costs_no_opentelemetry_import() -> None:
    """Importing the instrumented server and using the helpers while off loads neither
    the OpenTelemetry SDK nor its exporter (CLI start-up time)."""
    code = (
        "import sys\n"
        "import fleetprof.telemetry\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "import fleetprof.server.app, fleetprof.segment.writer, workers.parallel\n"
        "from fleetprof import telemetry\n"
        "assert not telemetry.setup_from_env('x', {})\n"
        "with telemetry.span('a') as s, telemetry.child('b'):\n"
        "    s.set({'k': 1}); telemetry.annotate({'k': 2})\n"
        "assert telemetry.carrier() is None and telemetry.current_link() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
