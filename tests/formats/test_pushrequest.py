"""decode_push_request: the body pyroscope-io 1.4 really sends (captured fixture and a live
capture), Connect JSON, label validation, and corruption → ProfileFormatError only."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from pprof_testutil import DATA, fixture_files, profile_stacks

from fleetprof.formats.errors import Limits, ProfileFormatError
from fleetprof.formats.pprof import decode_pprof
from fleetprof.formats.profile_types import profile_type_ids
from fleetprof.formats.proto import push_pb2
from fleetprof.formats.pushrequest import decode_push_request, parse_push_request

BODY = (DATA / "pyroscope_io_1.4_push.body.gz").read_bytes()
META = json.loads((DATA / "pyroscope_io_1.4_push.json").read_text())


def _check_agent_push(series):
    assert len(series) == 1
    s = series[0]
    assert s.labels["service_name"] == "demo.app"
    assert s.labels["__name__"] == "process_cpu"
    assert s.labels["env"] == "test" and s.labels["region"] == "eu-1"
    assert profile_type_ids(s.profile, s.labels["__name__"]) == ["process_cpu:cpu:nanoseconds:cpu:nanoseconds"]
    names = set(s.profile.frames["name"].to_list())
    assert {"busy_leaf", "busy_mid"} <= names
    assert s.profile.totals()[0] > 0
    assert ("endpoint", "/checkout") in set(s.profile.labels.select("key", "value").iter_rows())


def test_captured_agent_push():
    assert META["path"] == "/push.v1.PusherService/Push"
    assert META["headers"]["content-type"] == "application/proto"
    assert META["headers"]["content-encoding"] == "gzip"
    series = decode_push_request(BODY, content_type=META["headers"]["content-type"])
    _check_agent_push(series)
    assert series[0].sample_id  # the agent's uuid
    # already gunzipped by the server: same result
    assert profile_stacks(decode_push_request(gzip.decompress(BODY))[0].profile) == profile_stacks(series[0].profile)


def _request(series_list):
    req = push_pb2.PushRequest()
    for labels, profiles in series_list:
        s = req.series.add()
        for k, v in labels:
            s.labels.add(name=k, value=v)
        for i, raw in enumerate(profiles):
            s.samples.add(raw_profile=raw, ID=f"id{i}")
    return req


FIX = {p.name: p.read_bytes() for p in fixture_files()}


def test_several_series_and_samples_in_order():
    req = _request(
        [
            ([("service_name", "a"), ("__name__", "memory")], [FIX["heap.pb.gz"]]),
            ([("service_name", "b"), ("__name__", "process_cpu")], [FIX["cpu.pb.gz"], FIX["pyspy-1.pb.gz"]]),
            ([("service_name", "c")], []),
        ]
    )
    out = decode_push_request(req.SerializeToString())
    assert [(s.labels["service_name"], s.sample_id) for s in out] == [("a", "id0"), ("b", "id0"), ("b", "id1")]
    assert out[0].profile.totals() == decode_pprof(FIX["heap.pb.gz"]).totals()
    assert out[2].profile.totals() == [781]


def test_connect_json():
    req = push_pb2.PushRequest()
    req.ParseFromString(gzip.decompress(BODY))
    text = json_format.MessageToJson(req)
    assert '"rawProfile"' in text
    _check_agent_push(decode_push_request(text.encode(), content_type="application/json; charset=utf-8"))
    raw = req.series[0].samples[0].raw_profile
    hand = {
        "series": [
            {
                "labels": [{"name": "service_name", "value": "svc"}, {"name": "__name__", "value": "process_cpu"}],
                "samples": [{"rawProfile": base64.b64encode(raw).decode(), "ID": "x"}],
                "futureField": 1,
            }
        ]
    }
    out = decode_push_request(json.dumps(hand).encode(), content_type="application/json")
    assert out[0].labels == {"service_name": "svc", "__name__": "process_cpu"} and out[0].sample_id == "x"
    gz = gzip.compress(json.dumps(hand).encode())
    assert decode_push_request(gz, content_type="application/json")[0].profile.totals() == out[0].profile.totals()


def test_missing_service_name_becomes_unspecified():
    req = _request([([("__name__", "process_cpu")], [FIX["cpu.pb.gz"]])])
    assert decode_push_request(req.SerializeToString())[0].labels["service_name"] == "unspecified"


@pytest.mark.parametrize(
    "labels, match",
    [
        ([("service_name", "a"), ("bad-name", "x")], "invalid label name"),
        ([("service_name", "a"), ("1abc", "x")], "invalid label name"),
        ([("service_name", "a"), ("", "x")], "invalid label name"),
        ([("service_name", "a"), ("service_name", "b")], "duplicate"),
        ([("service_name", "a")] + [(f"l{i}", "v") for i in range(70)], "exceed"),
    ],
)
def test_label_validation(labels, match):
    req = _request([(labels, [FIX["cpu.pb.gz"]])])
    with pytest.raises(ProfileFormatError, match=match) as exc:
        decode_push_request(req.SerializeToString())
    assert exc.value.where.startswith("series[0].labels")


def test_label_limit_is_configurable():
    req = _request([([("service_name", "a"), ("x", "1"), ("y", "2")], [FIX["cpu.pb.gz"]])])
    with pytest.raises(ProfileFormatError):
        decode_push_request(req.SerializeToString(), limits=Limits(max_labels_per_sample=2))


def test_bad_raw_profile_names_series_and_sample():
    req = _request([([("service_name", "a")], [FIX["cpu.pb.gz"], b"\x12\x05garbage"])])
    with pytest.raises(ProfileFormatError) as exc:
        decode_push_request(req.SerializeToString())
    assert exc.value.format == "pushrequest"
    assert exc.value.where.startswith("series[0].samples[1].raw_profile")


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b"\xff\xff\xff", "application/proto"),
        (b"{not json", "application/json"),
        (b'{"series": 5}', "application/json"),
        (b'{"series":[{"samples":[{"rawProfile":"***"}]}]}', "application/json"),
        (b"", "text/plain"),
        (gzip.compress(b"x" * 100)[:-4], "application/proto"),
    ],
)
def test_malformed_bodies(body, ctype):
    with pytest.raises(ProfileFormatError):
        decode_push_request(body, content_type=ctype)


def test_empty_request():
    assert decode_push_request(b"") == []


@settings(max_examples=200, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**5)),
    plain=st.booleans(),
)
def test_corrupted_push_only_raises_format_error(edits, cut, plain):
    data = bytearray(gzip.decompress(BODY) if plain else BODY)
    for pos, byte in edits:
        data[pos % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        decode_push_request(bytes(data))
    except ProfileFormatError:
        pass


@pytest.mark.slow
def test_live_agent_push(tmp_path):
    """Run the real pyroscope-io agent against a loopback server and decode its pushes."""
    import pyroscope  # noqa: F401  - the real agent, installed by make
    script = Path(__file__).with_name("pyroscope_capture.py")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), "2.5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bodies = sorted(tmp_path.glob("req*.body"))
    assert bodies, proc.stdout + proc.stderr[-2000:]
    for body in bodies:
        meta = json.loads(body.with_suffix(".json").read_text())
        assert meta["path"] == "/push.v1.PusherService/Push"
        series = decode_push_request(body.read_bytes(), content_type=meta["headers"]["content-type"])
        for s in series:
            assert s.labels["service_name"] == "demo.app"
            assert s.labels["__name__"] == "process_cpu"
    parsed = parse_push_request(bodies[0].read_bytes())
    assert parsed.series[0].samples[0].raw_profile
