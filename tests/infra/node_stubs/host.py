"""Host commands of a sandboxed Amazon Linux node that the sandbox cannot run for real.

``python host.py <tool> ARGS``; tools:

* ``dnf install -y PKG...``: installs the packages the boot scripts name (:data:`PACKAGES`)
  as the programs they provide; an unknown package fails like dnf (``No match``).
* ``useradd --system [--create-home] [--home-dir D] NAME``: appends to ``/etc/passwd`` and
  ``/etc/group`` (writable copies in the sandbox) and creates the home directory.
* ``python3.11 ARGS``: the host's CPython 3.11. ``-m venv DIR`` also makes the host's
  dependencies of fleetprof (``$NODE_SITE_VIEW``, without fleetprof itself) part of the new
  environment, with their console scripts, as if pip had installed them there; the wheel
  is still installed by the boot script's own ``pip install``.
* ``cwagent-ctl -a fetch-config -m ec2 -s -c file:CONFIG``: checks the CloudWatch agent
  configuration (valid JSON, every log group exists in the region) and records it. With a
  ``traces.traces_collected.otlp`` section it starts the agent's OTLP/HTTP trace receiver as
  the agent would (``http_endpoint``, default ``127.0.0.1:4318``; gRPC is not served) and
  returns once it accepts connections; the receiver (``cwagent-otlp``) appends every span it
  is sent to ``$SYSTEMCTL_STUB_STATE/cwagent-traces.jsonl`` (one JSON object per span: service,
  name, trace_id, span_id, parent_id) where the real agent would send it to X-Ray.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BIN = Path("/usr/local/bin")
CTL = Path("/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl")
STATE = Path(os.environ.get("SYSTEMCTL_STUB_STATE", "/run/systemctl-stub"))
HERE = Path(__file__).resolve()
BASE_PYTHON = os.environ["NODE_BASE_PYTHON"]
STUB_PYTHON = os.environ["NODE_STUB_PYTHON"]


def _wrapper(path: Path, tool: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec {STUB_PYTHON} {HERE} {tool} "$@"\n')
    path.chmod(0o755)


PACKAGES = {
    "python3.11": lambda: _wrapper(BIN / "python3.11", "python3.11"),
    "python3.11-pip": lambda: None,
    "amazon-cloudwatch-agent": lambda: _wrapper(CTL, "cwagent-ctl"),
}


def dnf(args: list[str]) -> int:
    if not args or args[0] != "install":
        print(f"dnf stub: unsupported {args}", file=sys.stderr)
        return 1
    pkgs = [a for a in args[1:] if not a.startswith("-")]
    missing = [p for p in pkgs if p not in PACKAGES]
    if missing:
        print(f"No match for argument: {' '.join(missing)}\nError: Unable to find a match", file=sys.stderr)
        return 1
    for p in pkgs:
        PACKAGES[p]()
    return 0


def useradd(args: list[str]) -> int:
    name, home, create = args[-1], None, "--create-home" in args or "-m" in args
    if "--home-dir" in args:
        home = args[args.index("--home-dir") + 1]
    passwd = Path("/etc/passwd").read_text()
    if any(line.split(":")[0] == name for line in passwd.splitlines()):
        print(f"useradd: user '{name}' already exists", file=sys.stderr)
        return 9
    used = {int(line.split(":")[2]) for line in passwd.splitlines() if line.count(":") >= 3}
    uid = max(set(range(900, 1000)) - used)
    home = home or f"/home/{name}"
    with open("/etc/passwd", "a") as f:
        f.write(f"{name}:x:{uid}:{uid}::{home}:/sbin/nologin\n")
    with open("/etc/group", "a") as f:
        f.write(f"{name}:x:{uid}:\n")
    if create:
        Path(home).mkdir(parents=True, exist_ok=True)
        os.chown(home, uid, uid)
        Path(home).chmod(0o700)
    return 0


def _console_scripts(view: Path, bin_dir: Path) -> None:
    python = bin_dir / "python"
    for dist in importlib.metadata.distributions(path=[str(view)]):
        for ep in dist.entry_points:
            if ep.group != "console_scripts" or (bin_dir / ep.name).exists():
                continue
            module, _, attr = ep.value.partition(":")
            call = f"{attr.split('[')[0].strip()}" if attr else ""
            body = f"import sys\nfrom {module} import {call.split('.')[0]}\n" if call else f"import {module}\n"
            target = call if call else f"{module}.main"
            (bin_dir / ep.name).write_text(f"#!{python}\n{body}sys.exit({target}())\n")
            (bin_dir / ep.name).chmod(0o755)


def python311(args: list[str]) -> int:
    rc = subprocess.run([BASE_PYTHON, *args]).returncode
    if rc == 0 and args[:2] == ["-m", "venv"]:
        venv = Path(args[-1])
        view = Path(os.environ["NODE_SITE_VIEW"])
        (venv / "lib/python3.11/site-packages/host-dependencies.pth").write_text(f"{view}\n")
        _console_scripts(view, venv / "bin")
    return rc


def cwagent_ctl(args: list[str]) -> int:
    import boto3

    config_url = args[args.index("-c") + 1]
    if not config_url.startswith("file:") or "fetch-config" not in args:
        print(f"cwagent stub: unsupported {args}", file=sys.stderr)
        return 1
    config = json.loads(Path(config_url[5:]).read_text())
    logs = boto3.client("logs", region_name=config["agent"]["region"])
    for entry in config["logs"]["logs_collected"]["files"]["collect_list"]:
        group = entry["log_group_name"]
        found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        if not any(g["logGroupName"] == group for g in found):
            print(f"cwagent: log group {group} does not exist", file=sys.stderr)
            return 1
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "cloudwatch-agent.json").write_text(json.dumps(config))
    otlp = ((config.get("traces") or {}).get("traces_collected") or {}).get("otlp")
    return _start_otlp_receiver(otlp.get("http_endpoint") or "127.0.0.1:4318") if isinstance(otlp, dict) else 0


TRACES_FILE = "cwagent-traces.jsonl"
READY_TIMEOUT_S = 20.0


def _start_otlp_receiver(endpoint: str) -> int:
    """Start ``cwagent-otlp`` on ``endpoint`` in the background; 0 once it accepts connections."""
    host, _, port = endpoint.rpartition(":")
    log = open(STATE / "cwagent-otlp.log", "ab")
    subprocess.Popen([STUB_PYTHON, str(HERE), "cwagent-otlp", host, port, str(STATE / TRACES_FILE)],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.1)
    print(f"cwagent: OTLP receiver on {endpoint} did not start", file=sys.stderr)
    return 1


def cwagent_otlp(args: list[str]) -> int:
    """The agent's OTLP/HTTP trace receiver: ``POST /v1/traces`` (protobuf, optionally gzip)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    host, port, out = args[0], int(args[1]), Path(args[2])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            lines = []
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                res = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    lines += [json.dumps({"service": res.get("service.name", ""), "name": s.name,
                                          "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                                          "parent_id": s.parent_span_id.hex()}) + "\n" for s in ss.spans]
            with lock, open(out, "a") as f:
                f.write("".join(lines))
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    ThreadingHTTPServer((host, port), Handler).serve_forever()
    return 0


TOOLS = {"dnf": dnf, "useradd": useradd, "python3.11": python311, "cwagent-ctl": cwagent_ctl,
         "cwagent-otlp": cwagent_otlp}

if __name__ == "__main__":
    sys.exit(TOOLS[sys.argv[1]](sys.argv[2:]))
