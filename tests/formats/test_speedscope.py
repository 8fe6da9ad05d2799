import gzip
import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textprof import frame_rows, stacks

from fleetprof.formats.errors import TRUNCATED_FRAME, Limits, ProfileFormatError
from fleetprof.formats.folded import decode_folded
from fleetprof.formats.speedscope import SCHEMA_URL, decode_speedscope, encode_speedscope
from fleetprof.model import ValueType

CPU = ValueType("cpu", "nanoseconds")

# The essential structure of https://www.speedscope.app/file-format-schema.json
# (FileFormat.File with its Frame, SampledProfile, EventedProfile and ValueUnit
# definitions), written out here so the test needs no network.
SPEEDSCOPE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$ref": "#/definitions/FileFormat.File",
    "definitions": {
        "FileFormat.File": {
            "type": "object",
            "properties": {
                "$schema": {"type": "string", "const": SCHEMA_URL},
                "shared": {
                    "type": "object",
                    "properties": {"frames": {"type": "array", "items": {"$ref": "#/definitions/FileFormat.Frame"}}},
                    "required": ["frames"],
                    "additionalProperties": False,
                },
                "profiles": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"$ref": "#/definitions/FileFormat.EventedProfile"},
                            {"$ref": "#/definitions/FileFormat.SampledProfile"},
                        ]
                    },
                },
                "name": {"type": "string"},
                "activeProfileIndex": {"type": "number"},
                "exporter": {"type": "string"},
            },
            "required": ["$schema", "shared", "profiles"],
            "additionalProperties": False,
        },
        "FileFormat.Frame": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "file": {"type": "string"},
                "line": {"type": "number"},
                "col": {"type": "number"},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        "FileFormat.ValueUnit": {
            "type": "string",
            "enum": ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"],
        },
        "FileFormat.SampledProfile": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": "sampled"},
                "name": {"type": "string"},
                "unit": {"$ref": "#/definitions/FileFormat.ValueUnit"},
                "startValue": {"type": "number"},
                "endValue": {"type": "number"},
                "samples": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "weights": {"type": "array", "items": {"type": "number"}},
            },
            "required": ["type", "name", "unit", "startValue", "endValue", "samples", "weights"],
            "additionalProperties": False,
        },
        "FileFormat.EventedProfile": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": "evented"},
                "name": {"type": "string"},
                "unit": {"$ref": "#/definitions/FileFormat.ValueUnit"},
                "startValue": {"type": "number"},
                "endValue": {"type": "number"},
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": ["O", "C"]},
                            "at": {"type": "number"},
                            "frame": {"type": "number"},
                        },
                        "required": ["type", "at", "frame"],
                    },
                },
            },
            "required": ["type", "name", "unit", "startValue", "endValue", "events"],
            "additionalProperties": False,
        },
    },
}

FRAMES = [{"name": "a", "file": "a.py", "line": 3}, {"name": "b"}, {"name": "c", "file": "c.py"}]


def doc(*profiles, frames=FRAMES):
    return json.dumps({"$schema": SCHEMA_URL, "shared": {"frames": frames}, "profiles": list(profiles)}).encode()


def sampled(samples, weights, unit="none", name="s"):
    return {"type": "sampled", "name": name, "unit": unit, "startValue": 0, "endValue": 1, "samples": samples, "weights": weights}


def evented(events, unit="nanoseconds", name="e"):
    evs = [{"type": t, "frame": f, "at": at} for t, f, at in events]
    return {"type": "evented", "name": name, "unit": unit, "startValue": 0, "endValue": 1, "events": evs}


def test_sampled_stacks_weights_and_files():
    p = decode_speedscope(doc(sampled([[0, 1], [0, 1, 2], [0], [], [0, 1]], [1, 2, 3, 4, 5])))
    assert p.sample_types == (ValueType("samples", "count"),)
    assert stacks(p) == {("a", "b"): 6, ("a", "b", "c"): 2, ("a",): 3, (): 4}
    assert p.totals() == [15]
    assert ("c", "c.py", 0) in frame_rows(p) and ("a", "a.py", 0) in frame_rows(p)
    assert ("a", "a.py", 3) in frame_rows(decode_speedscope(doc(sampled([[0]], [1])), keep_lines=True))


def test_weights_default_and_shared_single_weight():
    assert stacks(decode_speedscope(doc(sampled([[0], [0, 1]], None)))) == {("a",): 1, ("a", "b"): 1}
    assert stacks(decode_speedscope(doc(sampled([[0], [0, 1], [0]], [7])))) == {("a",): 14, ("a", "b"): 7}


@pytest.mark.parametrize(
    ("unit", "weight", "vtype", "value"),
    [
        ("nanoseconds", 5, CPU, 5),
        ("microseconds", 1.5, CPU, 1500),
        ("milliseconds", 2, CPU, 2_000_000),
        ("seconds", 0.25, CPU, 250_000_000),
        ("bytes", 64, ValueType("alloc_space", "bytes"), 64),
        ("none", 3, ValueType("samples", "count"), 3),
    ],
)
def test_units(unit, weight, vtype, value):
    p = decode_speedscope(doc(sampled([[1]], [weight], unit=unit)))
    assert p.sample_types == (vtype,)
    assert stacks(p) == {("b",): value}


def test_evented_durations():
    events = [("O", 0, 0), ("O", 1, 1), ("O", 2, 3), ("C", 2, 6), ("C", 1, 6), ("O", 1, 7), ("C", 1, 8), ("C", 0, 10),
              ("O", 2, 12), ("C", 2, 15)]
    p = decode_speedscope(doc(evented(events)))
    assert p.sample_types == (CPU,)
    assert stacks(p) == {("a",): 4, ("a", "b"): 3, ("a", "b", "c"): 3, ("c",): 3}
    assert p.totals() == [13]


def test_profiles_merged_by_unit_kind_and_selectable():
    d = doc(
        sampled([[0, 1]], [2], unit="milliseconds", name="t1"),
        evented([("O", 0, 0), ("O", 1, 5), ("C", 1, 10), ("C", 0, 10)], unit="microseconds", name="t2"),
        sampled([[2]], [100], unit="bytes", name="mem"),
    )
    p = decode_speedscope(d)
    assert p.sample_types == (CPU, ValueType("alloc_space", "bytes"))
    assert stacks(p, 0) == {("a", "b"): 2_000_000 + 5_000, ("a",): 5_000}
    assert stacks(p, 1) == {("c",): 100}
    q = decode_speedscope(d, profile_index=2)
    assert q.sample_types == (ValueType("alloc_space", "bytes"),) and stacks(q) == {("c",): 100}
    with pytest.raises(ProfileFormatError, match="no profile 3"):
        decode_speedscope(d, profile_index=3)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "not an object"),
        (b"{}", "shared.frames"),
        (doc(sampled([[0, 3]], [1])), "out of range"),
        (doc(sampled([[0, -1]], [1])), "out of range"),
        (doc(sampled([[0]], [1, 2])), "2 weights for 1 samples"),
        (doc(sampled([[0]], [-1])), "negative"),
        (doc(sampled([[0.5]], [1])), "integers"),
        (doc(sampled([0], [1])), "not an array"),
        (doc(sampled([["a"]], [1])), "integers"),
        (doc(sampled([[0]], ["x"])), "numbers"),
        (doc(sampled([[0]], [1], unit="parsecs")), "unknown unit"),
        (doc({"type": "flat", "name": "x", "unit": "none"}), "unknown profile type"),
        (doc(evented([("O", 0, 0), ("C", 1, 1)])), "close of frame 1 while frame 0 is open"),
        (doc(evented([("O", 0, 0), ("O", 1, 1), ("C", 0, 2), ("C", 1, 3)])), "close of frame 0"),
        (doc(evented([("C", 0, 0)])), "close event without an open frame"),
        (doc(evented([("O", 0, 0)])), "never closed"),
        (doc(evented([("O", 0, 5), ("C", 0, 4)])), "out of order"),
        (doc(evented([("X", 0, 0)])), "unknown event type"),
        (doc({"type": "evented", "name": "e", "unit": "none", "events": [{"type": "O", "at": 0}]}), "event without"),
        (doc(sampled([[0]], [1]), frames=[{"file": "x"}]), "frame without a string name"),
        (b"[" * 100_000, "nested too deeply|invalid JSON"),
        (b'{"shared": {"frames": []}, "profiles": [], "x": NaN}', ""),
    ],
)
def test_bad_input_raises_profile_format_error(data, match):
    if not match:  # accepted: NaN outside any value we read
        decode_speedscope(data)
        return
    with pytest.raises(ProfileFormatError, match=match) as e:
        decode_speedscope(data)
    assert e.value.format == "speedscope"


def test_non_finite_weight_rejected():
    with pytest.raises(ProfileFormatError, match="non-finite"):
        decode_speedscope(doc(sampled([[0]], [1])).replace(b'"weights": [1]', b'"weights": [Infinity]'))


def test_limits():
    deep = sampled([[0, 1, 2, 0, 1, 2]], [1])
    p = decode_speedscope(doc(deep), limits=Limits(max_stack_depth=3))
    assert stacks(p) == {(TRUNCATED_FRAME, "b", "c"): 1}
    assert p.truncated_stacks == 1
    with pytest.raises(ProfileFormatError, match="exceed"):
        decode_speedscope(doc(sampled([[0]] * 5, [1] * 5)), limits=Limits(max_samples=4))
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_speedscope(doc(sampled([[0]], [1]), frames=[{"name": "x" * 100}]), limits=Limits(max_string_length=10))
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_speedscope(gzip.compress(doc(sampled([[0]] * 5000, [1] * 5000))), limits=Limits(max_decompressed_bytes=1000))


def test_invalid_utf8_replaced_and_gzip():
    raw = doc(sampled([[0]], [1]), frames=[{"name": "fxx"}]).replace(b"fxx", b"f\xff")
    assert stacks(decode_speedscope(raw)) == {("f\ufffd",): 1}
    assert stacks(decode_speedscope(gzip.compress(raw))) == {("f\ufffd",): 1}


def test_encode_valid_against_schema_and_round_trips():
    p = decode_folded(b"main (m.py:1);work (w.py:9) 5\nmain (m.py:1) 2\n 3\n", keep_lines=True)
    out = encode_speedscope(p)
    obj = json.loads(out)
    jsonschema.validate(obj, SPEEDSCOPE_SCHEMA)
    assert obj["$schema"] == SCHEMA_URL and obj["exporter"].startswith("fleetprof@")
    (prof,) = obj["profiles"]
    assert prof["unit"] == "none" and prof["endValue"] == 10 and sorted(prof["weights"]) == [2, 3, 5]
    assert {"name": "work", "file": "w.py", "line": 9} in obj["shared"]["frames"]
    q = decode_speedscope(out, keep_lines=True)
    assert stacks(q, files=True) == stacks(p, files=True)
    assert frame_rows(q) == frame_rows(p)


@pytest.mark.parametrize(
    ("vtype", "unit"),
    [(CPU, "nanoseconds"), (ValueType("alloc_space", "bytes"), "bytes"), (ValueType("wall", "microseconds"), "microseconds"),
     (ValueType("contentions", "count"), "none"), (ValueType("x", "furlongs"), "none")],
)
def test_encode_unit_mapping(vtype, unit):
    p = decode_folded(b"a;b 4\n", sample_type=vtype)
    obj = json.loads(encode_speedscope(p))
    jsonschema.validate(obj, SPEEDSCOPE_SCHEMA)
    assert obj["profiles"][0]["unit"] == unit


def test_encode_empty_profile_is_valid():
    obj = json.loads(encode_speedscope(decode_folded(b"")))
    jsonschema.validate(obj, SPEEDSCOPE_SCHEMA)
    assert obj["profiles"][0]["samples"] == [] and obj["shared"]["frames"] == []


NAMES = st.sampled_from(["a", "b", "c", 'q"uote', "uni\u00e9", "back\\slash", "sp ace"])


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.lists(NAMES, max_size=6).map(tuple), st.integers(0, 10**12), max_size=15))
def test_encode_decode_round_trip(d):
    text = "".join(f"{';'.join(k)} {v}\n" for k, v in d.items()).encode()
    p = decode_folded(text)
    out = encode_speedscope(p)
    jsonschema.validate(json.loads(out), SPEEDSCOPE_SCHEMA)
    q = decode_speedscope(out)
    assert stacks(q) == stacks(p)
    assert q.totals() == p.totals()


def _reference_evented(events):
    """Plain stack-walk reference for evented durations (a loop per event, test only)."""
    out: dict[tuple, int] = {}
    stack: list[int] = []
    last = None
    for kind, frame, at in events:
        if last is not None and stack and at > last:
            key = tuple(FRAMES[f]["name"] for f in stack)
            out[key] = out.get(key, 0) + at - last
        if kind == "O":
            stack.append(frame)
        else:
            stack.pop()
        last = at
    return out


@st.composite
def nested_events(draw):
    events = []
    stack: list[int] = []
    t = 0
    for _ in range(draw(st.integers(0, 40))):
        t += draw(st.integers(0, 5))
        if stack and draw(st.booleans()):
            events.append(("C", stack.pop(), t))
        else:
            f = draw(st.integers(0, 2))
            stack.append(f)
            events.append(("O", f, t))
    while stack:
        t += draw(st.integers(0, 5))
        events.append(("C", stack.pop(), t))
    return events


@settings(max_examples=80, deadline=None)
@given(nested_events())
def test_evented_matches_reference(events):
    p = decode_speedscope(doc(evented(events)))
    want = _reference_evented(events)
    assert stacks(p) == want
    assert p.totals() == [sum(want.values())]


VALID = doc(sampled([[0, 1], [2]], [1, 2]), evented([("O", 0, 0), ("O", 1, 1), ("C", 1, 2), ("C", 0, 3)]))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.builds(lambda i, b: VALID[:i] + b + VALID[i + len(b):], st.integers(0, len(VALID)), st.binary(min_size=1, max_size=4))
)
def test_arbitrary_bytes_only_raise_profile_format_error(data):
    try:
        decode_speedscope(data, limits=Limits(max_stack_depth=3))
    except ProfileFormatError:
        pass
