"""Demo service: regex parsing of log lines and a lock held under contention by threads."""

from __future__ import annotations

import re
import threading
import time

from fleetprof.demo_services.agent import run

LOG_RE = re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - - \[(?P<ts>[^\]]+)\] \"(?P<method>GET|POST) (?P<path>\S+)[^\"]*\" (?P<status>\d{3}) (?P<size>\d+)")
LINES = [f'10.0.{i % 256}.{i % 7} - - [22/Nov/2026:04:00:{i % 60:02d} +0000] "GET /api/item/{i} HTTP/1.1" {200 + i % 3} {i * 13}' for i in range(400)]
_lock = threading.Lock()
_counter = {"n": 0}


def parse_logs() -> int:
    total = 0
    for line in LINES:
        m = LOG_RE.match(line)
        if m:
            total += int(m.group("size"))
    return total


def critical_section() -> None:
    with _lock:
        x = 0
        for i in range(20_000):
            x += i * i
        _counter["n"] += x & 1


def contender() -> None:
    while True:
        critical_section()
        time.sleep(0.001)


def step() -> None:
    parse_logs()
    critical_section()


if __name__ == "__main__":
    for _ in range(3):
        threading.Thread(target=contender, daemon=True).start()
    run("text-worker", step, {"tier": "batch"})
