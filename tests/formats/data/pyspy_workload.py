"""A small CPU-bound program for the py-spy recording test (recognisable function names)."""

import hashlib
import json
import sys
import time


def hash_loop(n: int) -> bytes:
    h = b"fleetprof"
    for _ in range(n):
        h = hashlib.sha256(h).digest()
    return h


def json_roundtrip(n: int) -> dict:
    doc = {"numbers": list(range(200)), "nested": {"k": "v" * 50}}
    for _ in range(n):
        doc = json.loads(json.dumps(doc))
    return doc


def main(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        hash_loop(3000)
        json_roundtrip(300)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 4.0)
