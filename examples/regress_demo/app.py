"""A small CPU-bound program for the regression-gate demo.

It runs three stages in a loop for ``--seconds`` (default 3): ``parse_records``,
``score_records`` and ``render_report``, each doing the same amount of work. With
``--slow``, ``score_records`` does nine times more work (the deliberate slowdown), so its
share of the CPU profile grows from about a third to over four fifths.

Record it before/after with py-spy and gate the change::

    py-spy record --format raw --rate 250 --duration 3 -o base.txt -- python app.py
    py-spy record --format raw --rate 250 --duration 3 -o cand.txt -- python app.py --slow
    fleetprof regress base.txt cand.txt --threshold 10 --min-share 2   # exit 1: score_records
"""

from __future__ import annotations

import argparse
import time

UNIT = 20_000


def busy(n: int) -> int:
    """Pure-Python arithmetic: ``n`` loop iterations of CPU work."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def parse_records() -> int:
    return busy(UNIT)


def score_records(slow: bool) -> int:
    return busy(UNIT * (9 if slow else 1))


def render_report() -> int:
    return busy(UNIT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slow", action="store_true", help="make score_records nine times slower")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    end = time.monotonic() + args.seconds
    rounds = 0
    while time.monotonic() < end:
        parse_records()
        score_records(args.slow)
        render_report()
        rounds += 1
    print(f"{rounds} rounds")


if __name__ == "__main__":
    main()
