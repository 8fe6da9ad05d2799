"""``make run``: the server on 127.0.0.1:4040 with embedded storage, plus demo services
profiled by the real pyroscope-io agent pushing to it and traced with the OpenTelemetry SDK
(spans to the server's ``/v1/traces``; pyroscope-otel tags their profile samples with the
span ids). Ctrl-C stops everything.

``python -m fleetprof.demo [--port 4040] [--seconds N]`` (``--seconds`` stops by itself).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVICES = {"json-api": "fleetprof.demo_services.json_api", "text-worker": "fleetprof.demo_services.text_worker"}
"""application name → module of the demo services."""
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def wait_ready(url: str, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url/readyz`` until 200 (``RuntimeError`` on timeout or if ``proc`` exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not ready after {timeout_s:g}s")


def server_env(env: dict[str, str], url: str) -> dict[str, str]:
    """The demo server's environment: unless an OTLP endpoint is configured already, the
    server traces itself (its own spans go to its ``/v1/traces``, as service
    ``fleetprof-server``)."""
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env
    return {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": url}


def stop(procs: list[subprocess.Popen[bytes]], timeout_s: float = 15.0) -> None:
    """SIGTERM (graceful) every process, then SIGKILL stragglers."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=4040)
    ap.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = until Ctrl-C)")
    ap.add_argument("--data", default=str(Path.cwd() / ".fleetprof"))
    args = ap.parse_args(argv)
    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{args.port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetprof", "serve", "--port", str(args.port),
         "--storage", f"file://{data / 'data'}", "--index", f"sqlite://{data / 'index.db'}"],
        env=server_env(env, url),
    )
    procs = [server]
    try:
        wait_ready(url, proc=server)
        for name, mod in SERVICES.items():
            procs.append(subprocess.Popen([sys.executable, "-m", mod, "--server", url, "--app-name", name], env=env))
        print(f"\nfleetprof demo running — services: {', '.join(SERVICES)}")
        print(f"  services & flame graphs: {url}/")
        print(f"  Pyroscope render API:    {url}/pyroscope/render?query={CPU}{{service_name=\"json-api\"}}&from=now-15m&until=now")
        print(f"  SVG flame graph:         {url}/api/v1/export?format=svg&from=now-15m&query={CPU}%7Bservice_name%3D%22json-api%22%7D")
        print(f"  traces (Tempo search):   {url}/api/search?service=json-api")
        print(f"  span flame graph:        {url}/api/v1/span-profile?query={CPU}%7Bservice_name%3D%22json-api%22%7D&spanName=GET%20/api/orders&from=now-15m")
        print(f"  metrics:                 {url}/metrics")
        print("profiles arrive every ~10 s; Ctrl-C stops everything.\n", flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds > 0 else float("inf")
        while time.monotonic() < deadline:
            if server.poll() is not None:
                print(f"server exited with status {server.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        stop(procs[1:] + procs[:1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
