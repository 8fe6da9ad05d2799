"""speedscope CPU time carries Pyroscope's CPU period type and the sampling interval;
``sample_rate`` turns ``none`` counts into CPU time as folded counts are."""

from __future__ import annotations

import json

from fleetprof.formats.detect import decode
from fleetprof.formats.speedscope import decode_speedscope
from fleetprof.model.profile import ValueType

CPU = ValueType("cpu", "nanoseconds")


def doc(unit: str, weights: list[float]) -> bytes:
    return json.dumps({
        "$schema": "https://www.speedscope.app/file-format-schema.json", "exporter": "py-spy@0.4.3",
        "shared": {"frames": [{"name": "main", "file": "app.py", "line": 3}, {"name": "work", "file": "app.py", "line": 9}]},
        "profiles": [{"type": "sampled", "name": "t", "unit": unit, "startValue": 0, "endValue": 1,
                      "samples": [[0, 1]] * len(weights), "weights": weights}],
    }).encode()


def test_pyspy_seconds_get_cpu_period_of_the_rate() -> None:
    p = decode(doc("seconds", [0.005, 0.005, 0.005, 0.01]))
    assert p.sample_types == (CPU,)
    assert p.period_type == CPU and p.period == 5_000_000
    assert p.totals() == [25_000_000]


def test_counts_with_sample_rate_become_cpu() -> None:
    p = decode(doc("none", [1, 1, 2]), sample_rate=250)
    assert p.sample_types == (CPU,) and p.period_type == CPU and p.period == 4_000_000
    assert p.totals() == [16_000_000]
    plain = decode_speedscope(doc("none", [1, 1, 2]))
    assert plain.sample_types == (ValueType("samples", "count"),) and plain.period_type is None
