"""API fuzzing against a real server: schemathesis cases from ``/openapi.json`` for every
operation, and hypothesis-built bodies for the raw ingest paths (Connect ``Push`` fast
path, legacy ``/ingest``), all held to one property: no 5xx, and every error answer is JSON
``{code, message}`` (strings).

Used by ``test_server_fuzz.py`` (a short, bounded run in ``make test``) and
``tests/stress/test_fuzz_api.py`` (``make stress``, rounds until a duration is spent).
"""

from __future__ import annotations

import gzip
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from serverutil import PUSH, pprof_bytes, push_body

from fleetprof.formats.proto import push_pb2

HEALTH = list(HealthCheck)
TIMEOUT_S = 120.0


for _media in ("application/proto", "application/octet-stream"):
    @schemathesis.serializer(_media)
    def _raw(ctx: Any, value: Any) -> bytes:  # noqa: ANN401 - schemathesis' serializer hook
        return value if isinstance(value, bytes) else json.dumps(value).encode()


def problem(status: int, ctype: str, body: bytes, request_ctype: str = "") -> str | None:
    """Why an answer breaks the property (``None`` when it holds). An error answer is JSON
    ``{code, message}``; to a protobuf request (``request_ctype``) it may instead be a
    protobuf ``google.rpc.Status`` with a code and a message (OTLP/HTTP's error body)."""
    if status >= 500:
        return f"server error {status}: {body[:300]!r}"
    if status < 400:
        return None
    media = ctype.split(";")[0].strip().lower()
    if media == "application/x-protobuf" and request_ctype.split(";")[0].strip().lower() == "application/x-protobuf":
        from google.rpc.status_pb2 import Status

        try:
            st = Status.FromString(body)
        except Exception:  # noqa: BLE001 - any decode failure breaks the property
            return f"error {status} body is not a google.rpc.Status: {body[:300]!r}"
        return None if st.code and st.message else f"error {status} Status lacks code or message: {body[:300]!r}"
    if media != "application/json":
        return f"error {status} is {ctype or 'untyped'}, not JSON: {body[:300]!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"error {status} body is not JSON: {body[:300]!r}"
    if not (isinstance(doc, dict) and isinstance(doc.get("code"), str) and isinstance(doc.get("message"), str)):
        return f"error {status} body is not {{code, message}}: {body[:300]!r}"
    return None


@dataclass
class Report:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def seen(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


def _settings(examples: int, rnd_seed: int) -> Callable[[Any], Any]:
    def wrap(fn: Any) -> Any:
        fn = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=HEALTH,
                      phases=[Phase.explicit, Phase.generate, Phase.shrink], print_blob=False)(fn)
        return seed(rnd_seed)(fn)
    return wrap


def _run(name: str, test: Callable[[], None], report: Report) -> None:
    try:
        test()
    except Unsatisfiable:  # nothing to vary (e.g. no parameter to make invalid)
        pass
    except Exception as e:  # noqa: BLE001 - collected: every operation is fuzzed
        report.failures.append(f"{name}: {_describe(e)}")


def _describe(e: BaseException) -> str:
    """The message and notes of ``e`` and of every exception grouped in it."""
    text = "".join(traceback.format_exception_only(e)).strip() + "\n" + "\n".join(getattr(e, "__notes__", []))
    for sub in getattr(e, "exceptions", ()):
        text += "\n  - " + _describe(sub).replace("\n", "\n    ")
    return text


def _ctype(headers: Any) -> str:
    """The Content-Type of a schemathesis response (header values are lists there)."""
    value = headers.get("content-type") or headers.get("Content-Type") or ""
    return value[0] if isinstance(value, list) else str(value)


def fuzz_schema(base_url: str, examples: int, report: Report, rnd_seed: int = 0) -> None:
    """Every operation of ``/openapi.json``, positive and negative cases, ``examples`` each."""
    doc = httpx.get(base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode)

            @_settings(examples, rnd_seed)
            @given(case=strategy)
            def one(case: Any) -> None:
                try:
                    r = case.call(base_url=base_url, timeout=TIMEOUT_S)
                except Exception as e:  # connection reset, timeout
                    raise AssertionError(f"no answer ({type(e).__name__}: {e}): {case.as_curl_command(base_url=base_url)}") from None
                report.seen(r.status_code)
                why = problem(r.status_code, _ctype(r.headers), r.content, case.media_type or "")
                assert why is None, f"{why}\n{case.as_curl_command(base_url=base_url)}"

            _run(f"{op.label} ({mode.value})", one, report)


# ----------------------------------------------------------------- raw ingest bodies
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_NAMES = st.one_of(st.sampled_from(["__name__", "service_name", "env", "__delta__", "job"]), _TEXT)
_FRAMES = st.one_of(st.sampled_from(["main", "run", "a;b", "{closure}", "<script>", ""]), _TEXT)


@st.composite
def _pprof(draw: Any) -> bytes:
    stacks = draw(st.lists(st.lists(_FRAMES.filter(bool), min_size=1, max_size=5), min_size=1, max_size=4))
    values = draw(st.lists(st.integers(0, 2**63 - 1), min_size=len(stacks), max_size=len(stacks)))
    when = draw(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)))
    return pprof_bytes(stacks, values, when)


def _mangle(draw: Any, data: bytes) -> bytes:
    """``data`` as is, truncated, bit-flipped or replaced by random bytes."""
    how = draw(st.sampled_from(["keep", "keep", "cut", "flip", "random"]))
    where = st.floats(0.0, 1.0, exclude_max=True)  # positions as fractions: the same draws
    if how == "cut" and data:  # whatever the length (profiles stamped now vary in size)
        return data[: int(draw(where) * len(data))]
    if how == "flip" and data:
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            buf[int(draw(where) * len(buf))] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf)
    if how == "random":
        return draw(st.binary(max_size=2048))
    return data


@st.composite
def push_requests(draw: Any) -> tuple[dict[str, str], bytes]:
    """Headers and body of a Connect ``Push``: proto or JSON, gzipped or not, mangled."""
    req = push_pb2.PushRequest()
    for _ in range(draw(st.integers(0, 3))):
        s = req.series.add()
        for k, v in draw(st.dictionaries(_NAMES, _TEXT, max_size=4)).items():
            lp = s.labels.add()
            lp.name, lp.value = k, v
        for _ in range(draw(st.integers(0, 2))):
            s.samples.add(raw_profile=_mangle(draw, draw(_pprof())), ID=draw(_TEXT))
    as_json = draw(st.booleans())
    if as_json:
        from google.protobuf import json_format

        body = json_format.MessageToJson(req).encode()
        ctype = draw(st.sampled_from(["application/json", "application/connect+json", "application/json; charset=utf-8"]))
    else:
        body = req.SerializeToString()
        ctype = draw(st.sampled_from(["application/proto", "application/connect+proto", "application/x-protobuf", "text/plain", ""]))
    headers = {"content-type": ctype} if ctype else {}
    if draw(st.booleans()):
        body = gzip.compress(body)
        headers["content-encoding"] = draw(st.sampled_from(["gzip", "gzip", "br", "identity"]))
    # header values HTTP can carry (no surrounding blanks): anything else never leaves the client
    tenant = draw(st.one_of(st.none(), st.from_regex(r"\A([!-~]([ -~]{0,68}[!-~])?)?\Z")))
    if tenant is not None:
        headers["x-scope-orgid"] = tenant
    return headers, _mangle(draw, body)


_FOLDED = st.lists(st.tuples(st.lists(_FRAMES, max_size=4), st.integers(-5, 2**64)), max_size=6).map(
    lambda rows: "\n".join(f"{';'.join(s)} {v}" for s, v in rows).encode())


@st.composite
def legacy_ingests(draw: Any) -> tuple[dict[str, str], dict[str, str], bytes | dict[str, Any]]:
    """Query, headers and body (bytes, or multipart files) of a legacy ``/ingest``."""
    q: dict[str, str] = {}
    q["name"] = draw(st.one_of(st.sampled_from(["api.cpu", "api.cpu{env=prod}", "a{", "x.alloc_objects{a=b,c=d}"]), _TEXT))
    for key, values in {
        "format": ["folded", "lines", "pprof", "jfr", "trie", "tree", "speedscope", ""],
        "from": ["now-1h", "0", "1795132800", "99999999999999999999999", "-1", "abc"],
        "until": ["now", "1795132800000", "18446744073709551616"],
        "sampleRate": ["100", "0", "-1", "1e9", "nan", "99999999999999999999"],
        "spyName": ["pyspy", "gospy", "javaspy"],
        "units": ["samples", "bytes", "objects", "goroutines", "lock_nanoseconds", "??"],
        "aggregationType": ["sum", "average", "max"],
    }.items():
        if draw(st.booleans()):
            q[key] = draw(st.one_of(st.sampled_from(values), _TEXT))
    kind = draw(st.sampled_from(["folded", "pprof", "random", "multipart"]))
    if kind == "folded":
        body: bytes | dict[str, Any] = _mangle(draw, draw(_FOLDED))
    elif kind == "pprof":
        body = _mangle(draw, draw(_pprof()))
    elif kind == "random":
        body = draw(st.binary(max_size=4096))
    else:
        parts = {name: (name, _mangle(draw, draw(_pprof())), "application/octet-stream")
                 for name in draw(st.lists(st.sampled_from(["profile", "prev_profile", "sample_type_config", "labels", "x"]), max_size=3, unique=True))}
        return q, {}, parts
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["content-type"] = draw(st.sampled_from(["binary/octet-stream", "text/plain", "multipart/form-data; boundary=x", "application/json"]))
    if isinstance(body, bytes) and draw(st.booleans()):
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return q, headers, body


def _checked(report: Report, r: httpx.Response, what: str) -> None:
    report.seen(r.status_code)
    why = problem(r.status_code, r.headers.get("content-type", ""), r.content)
    assert why is None, f"{what}: {why}"


def fuzz_raw(base_url: str, examples: int, report: Report, rnd_seed: int = 0) -> None:
    """Push (Connect fast path) and legacy ``/ingest`` bodies, ``examples`` each."""
    client = httpx.Client(base_url=base_url, timeout=TIMEOUT_S)

    @_settings(examples, rnd_seed)
    @given(req=push_requests())
    def push(req: tuple[dict[str, str], bytes]) -> None:
        headers, body = req
        try:
            r = client.post(PUSH, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise AssertionError(f"push: no answer ({type(e).__name__}: {e})") from None
        _checked(report, r, f"push {headers}")

    @_settings(examples, rnd_seed)
    @given(req=legacy_ingests())
    def ingest(req: tuple[dict[str, str], dict[str, str], Any]) -> None:
        q, headers, body = req
        try:
            if isinstance(body, dict):
                r = client.post("/ingest", params=q, files=body)
            else:
                r = client.post("/ingest", params=q, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise AssertionError(f"/ingest: no answer ({type(e).__name__}: {e})") from None
        _checked(report, r, f"/ingest {q} {headers}")

    with client:
        _run("POST push (raw bodies)", push, report)
        _run("POST /ingest (raw bodies)", ingest, report)


def seed_data(base_url: str) -> None:
    """One real profile, so that the fuzzed reads find data (service ``api``)."""
    body = push_body("api", pprof_bytes([["main", "run"], ["main", "gc"]], [5, 3]))
    r = httpx.post(base_url + PUSH, content=body, headers={"content-type": "application/proto", "content-encoding": "gzip"}, timeout=60)
    assert r.status_code == 200, r.text


def fuzz_rounds(base_url: str, examples: int, deadline_s: float, report: Report) -> int:
    """Rounds of :func:`fuzz_schema` + :func:`fuzz_raw` with fresh seeds until
    ``deadline_s`` (monotonic) passes; the number of rounds run."""
    rounds = 0
    while time.monotonic() < deadline_s:
        s = int.from_bytes(os.urandom(4), "big")  # hypothesis seeds the global random
        known = len(report.failures)
        fuzz_schema(base_url, examples, report, s)
        fuzz_raw(base_url, examples, report, s)
        report.failures[known:] = [f"[seed {s}] {f}" for f in report.failures[known:]]
        rounds += 1
    return rounds
