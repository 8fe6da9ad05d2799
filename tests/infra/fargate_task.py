"""Driver of one sandboxed Fargate task (run by ``fargate_sandbox`` inside bubblewrap).

Runs inside the task's own network namespace as the container's user, with the read-only
root. Reads a JSON spec (argv, env, healthcheck, port, buckets, tables, deadline, and the
client's token if the server has auth) from the file named by ``argv[1]``, then: starts a moto server on 127.0.0.1 standing in for S3 and
DynamoDB, creates the buckets and tables the container's environment names, starts the
container's command with exactly the container's environment (plus the endpoint and
credentials ECS would hand the task role), waits for ``/readyz`` under a deadline, runs the
container's health check, tries ``/ingest`` and ``/api/v1/export`` without a token, then pushes
a folded profile to ``/ingest`` and reads it back through ``/api/v1/export`` with the token. Prints one JSON object with what it saw; never raises past ``main``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

SERVICE = "fargate.sandbox"
FOLDED = b"main;handle;encode_json 30\nmain;handle;query_db 10\nmain;idle 5\n"
QUERY = f'process_cpu:cpu:nanoseconds:cpu:nanoseconds{{service_name="{SERVICE}"}}'


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def create_backends(endpoint: str, spec: dict[str, Any]) -> None:
    import boto3

    kw = {"endpoint_url": endpoint, "region_name": spec["region"], "aws_access_key_id": "task-role", "aws_secret_access_key": "task-role"}
    s3 = boto3.client("s3", **kw)
    for bucket in spec["buckets"]:
        s3.create_bucket(Bucket=bucket)
    dynamo = boto3.client("dynamodb", **kw)
    for table in spec["tables"]:
        dynamo.create_table(**table)
        dynamo.get_waiter("table_exists").wait(TableName=table["TableName"], WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0,
         token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(proc: subprocess.Popen, base: str, deadline: float) -> tuple[bool, str]:
    """Poll ``/readyz`` until 200, the process exits, or the deadline passes."""
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False, f"exited with {proc.returncode}"
        try:
            status, body = http("GET", f"{base}/readyz", timeout=2.0)
            if status == 200:
                return True, ""
            last = f"{status} {body[:200]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    return False, f"not ready before the deadline: {last}"


def round_trip(base: str, token: str | None) -> dict[str, Any]:
    """Ingest then query with ``token``; first the same ingest and query without a token."""
    now = int(time.time())
    params = urllib.parse.urlencode({"name": SERVICE, "format": "folded", "from": now - 10, "until": now, "sampleRate": 100})
    query = urllib.parse.urlencode({"format": "folded", "query": QUERY, "from": "now-1h", "until": str((now + 120) * 1000)})
    out: dict[str, Any] = {
        "anonymous_ingest_status": http("POST", f"{base}/ingest?{params}", FOLDED)[0],
        "anonymous_query_status": http("GET", f"{base}/api/v1/export?{query}")[0],
    }
    status, body = http("POST", f"{base}/ingest?{params}", FOLDED, token=token)
    out.update(ingest_status=status, ingest_body=body[:300].decode(errors="replace"))
    status, body = http("GET", f"{base}/api/v1/export?{query}", token=token)
    out["query_status"] = status
    out["folded"] = body.decode(errors="replace")
    return out


def objects(endpoint: str, spec: dict[str, Any]) -> int:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=spec["region"], aws_access_key_id="x", aws_secret_access_key="x")
    return sum(s3.list_objects_v2(Bucket=b).get("KeyCount", 0) for b in spec["buckets"])


def run(spec: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + spec["deadline_s"]
    moto, endpoint = start_moto()
    result: dict[str, Any] = {"uid": os.getuid()}
    try:
        create_backends(endpoint, spec)
        env = {**spec["env"], **spec["task_role_env"], "AWS_ENDPOINT_URL": endpoint}
        log = open(os.path.join(spec["log_dir"], "container.log"), "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(spec["argv"], env=env, cwd=spec["workdir"], stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{spec['port']}"
            result["ready"], result["why"] = wait_ready(proc, base, deadline)
            if result["ready"]:
                check = subprocess.run(spec["healthcheck"], env=env, cwd=spec["workdir"], capture_output=True, timeout=30)
                result["healthcheck_rc"] = check.returncode
                result.update(round_trip(base, spec.get("token")))
                result["objects"] = objects(endpoint, spec)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    finally:
        moto.stop()
    return result


def main() -> int:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        result = run(spec)
    except Exception as e:  # noqa: BLE001 - reported to the test as data
        result = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
