"""Capture what the pyroscope-io agent pushes: run it against a loopback HTTP server that
stores each request (path, headers, body). Run as a script: ``python pyroscope_capture.py
OUTDIR`` (the agent is a process-wide native singleton, so tests run this in a subprocess).
Used to record ``data/pyroscope_io_1.4_push.*`` and by the live test."""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from pathlib import Path


def main(out: Path, seconds: float = 3.0) -> int:
    out.mkdir(parents=True, exist_ok=True)
    count = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            i = count[0]
            count[0] += 1
            (out / f"req{i}.body").write_bytes(body)
            meta = {"method": self.command, "path": self.path, "headers": dict(self.headers.items())}
            (out / f"req{i}.json").write_text(json.dumps(meta, indent=1))
            self.send_response(200)
            self.send_header("Content-Type", "application/proto")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    import pyroscope

    pyroscope.configure(
        application_name="demo.app",
        server_address=f"http://127.0.0.1:{srv.server_address[1]}",
        sample_rate=100,
        upload_interval=1,
        tags={"env": "test", "region": "eu-1"},
    )

    def busy_leaf(n):
        s = 0
        for i in range(n):
            s += i * i
        return s

    def busy_mid():
        return busy_leaf(200_000)

    start = time.time()
    with pyroscope.tag_wrapper({"endpoint": "/checkout"}):
        while time.time() - start < seconds:
            busy_mid()
    pyroscope.shutdown()
    time.sleep(1.0)
    srv.shutdown()
    return count[0]


if __name__ == "__main__":
    n = main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)
    print(f"captured {n} requests")
