"""Small programs whose hot spots the fleet-analysis rules must name (recorded by py-spy in
tests/workers/test_findings_real.py). ``python findings_workload.py SECONDS PART [PART ...]``
runs the named parts round-robin, each for an equal slice of every round."""

from __future__ import annotations

import copy
import gzip
import hashlib
import inspect
import json
import logging
import pickle
import re
import sqlite3
import sys
import time
import traceback
import zlib

DOC = {"id": 1, "items": [{"sku": f"s{i}", "qty": i, "price": i * 1.5} for i in range(40)], "tags": ["a", "b"]}
PAYLOAD = json.dumps(DOC).encode() * 20
log = logging.getLogger("workload")
logging.basicConfig(stream=open("/dev/null", "w"), level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")  # noqa: SIM115
DB = sqlite3.connect(":memory:")
DB.execute("create table t (id integer primary key, name text, qty integer)")
DB.executemany("insert into t values (?, ?, ?)", [(i, f"n{i}", i % 17) for i in range(2000)])


def json_part() -> None:
    json.loads(json.dumps(DOC))


def regex_compile_part() -> None:
    re.purge()  # what a hot path building patterns from data amounts to
    re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - (?P<user>\w+) \[(?P<ts>[^\]]+)\] \"(?P<m>GET|POST|PUT) (?P<p>\S+)\"")


def logging_part() -> None:
    log.info("handled order %s with %d items", DOC["id"], len(DOC["items"]))


def gzip_part() -> None:
    gzip.compress(PAYLOAD[:4000], compresslevel=6)


def deepcopy_part() -> None:
    copy.deepcopy(DOC)


def hashing_part() -> None:
    h = b""
    for _ in range(20):
        h = hashlib.sha256(h + PAYLOAD).digest()


def zlib_part() -> None:
    zlib.compress(PAYLOAD, 6)


def pickle_part() -> None:
    pickle.loads(pickle.dumps(DOC))


def exceptions_part() -> None:
    try:
        int("not a number")
    except ValueError:
        traceback.format_exc()  # a formatted traceback per handled error


def reflection_part() -> None:
    inspect.signature(main)


def sqlite_part() -> None:
    DB.execute("select qty, count(*), sum(id) from t where name like 'n1%' group by qty").fetchall()


def main(seconds: float, parts: list[str]) -> None:
    fns = [globals()[f"{p}_part"] for p in parts]
    end = time.monotonic() + seconds
    slice_s = 0.02
    while time.monotonic() < end:
        for fn in fns:
            t = time.monotonic() + slice_s
            while time.monotonic() < t:
                fn()


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
