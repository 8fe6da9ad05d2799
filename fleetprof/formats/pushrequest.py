"""Pyroscope ``push.v1.PushRequest`` decoder (the body of ``POST /push.v1.PusherService/Push``).

Contract (:func:`decode_push_request`):

* ``content_type``: ``application/proto`` (also ``application/x-protobuf``,
  ``application/protobuf``, ``application/octet-stream``) or ``application/json``
  (Connect JSON: ``{"series":[{"labels":[{"name":…,"value":…}],"samples":[{"rawProfile":
  "<base64>","ID":…}]}]}``; unknown JSON fields are ignored). Parameters such as
  ``; charset=utf-8`` are ignored. A gzipped body (magic ``1f 8b``) is accepted whatever the
  caller already did, bounded by ``limits.max_decompressed_bytes``.
* One :class:`PushedSeries` per (series, raw sample), in request order, its profile
  decoded with :func:`decode_pprof` (each raw profile may itself be gzipped).
* Labels are validated like Pyroscope's distributor: names match
  ``[a-zA-Z_][a-zA-Z0-9_.]*`` (``__name__`` and dotted OpenTelemetry names such as
  ``process.runtime.name`` included), no duplicate names, at most
  ``limits.max_labels_per_sample`` per series, names/values within
  ``limits.max_string_length``. A series without ``service_name`` gets
  ``service_name="unspecified"``, exactly as Pyroscope does, so every series has one.
* This is what pyroscope-io 1.4 (pyroscope-rs) sends (captured in
  ``tests/formats/data/pyroscope_io_1.4_push.*``): gzipped ``application/proto`` with
  labels ``__name__=process_cpu``, ``service_name=<application_name>``, the configured
  tags and ``otel.scope.*``/``process.runtime.*``; one raw pprof per series.
* Anything malformed raises :class:`ProfileFormatError` (format ``pushrequest``) naming
  the series/sample (``series[0].samples[1].raw_profile: …``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from fleetprof.formats.errors import DEFAULT_LIMITS, Limits, ProfileFormatError, maybe_gunzip
from fleetprof.formats.pprof import decode_pprof, decode_pprof_stacks
from fleetprof.formats.proto import push_pb2
from fleetprof.model.profile import Profile, Stacks, ValueType

T = TypeVar("T")

FMT = "pushrequest"
SERVICE_NAME = "service_name"
UNSPECIFIED_SERVICE = "unspecified"
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.]*\Z")
PROTO_TYPES = frozenset({"application/proto", "application/x-protobuf", "application/protobuf", "application/octet-stream", ""})
JSON_TYPES = frozenset({"application/json"})


@dataclass
class PushedSeries:
    """One raw profile of a pushed series, decoded."""

    labels: dict[str, str]
    profile: Profile
    sample_id: str = ""


def decode_push_request(
    body: bytes,
    *,
    content_type: str = "application/proto",
    limits: Limits = DEFAULT_LIMITS,
) -> list[PushedSeries]:
    """Decode a PushRequest body (see the module contract)."""
    return [PushedSeries(labels, profile, sid) for labels, profile, sid in _decode_each(body, content_type, limits, decode_pprof)]


@dataclass
class PushedStacks:
    """One raw profile of a pushed series, decoded and validated but not built:
    ``build(stacks, sample_types, **meta)`` is the profile :func:`decode_push_request` gives."""

    labels: dict[str, str]
    stacks: Stacks
    sample_types: tuple[ValueType, ...]
    meta: dict[str, Any]
    sample_id: str = ""


def decode_push_request_stacks(
    body: bytes,
    *,
    content_type: str = "application/proto",
    limits: Limits = DEFAULT_LIMITS,
) -> list[PushedStacks]:
    """:func:`decode_push_request` up to (not including) the call-tree build: the same
    checks and errors, each profile as CSR stacks (for batch building at the writer)."""
    return [
        PushedStacks(labels, st, types, meta, sid)
        for labels, (st, types, meta), sid in _decode_each(body, content_type, limits, _stacks_ungrouped)
    ]


def _stacks_ungrouped(data: bytes, *, limits: Limits) -> tuple[Stacks, tuple[ValueType, ...], dict[str, Any]]:
    return decode_pprof_stacks(data, limits=limits, group=False)


def _decode_each(body: bytes, content_type: str, limits: Limits, decode: Callable[..., T]) -> list[tuple[dict[str, str], T, str]]:
    req = parse_push_request(body, content_type=content_type, limits=limits)
    out: list[tuple[dict[str, str], T, str]] = []
    for i, series in enumerate(req.series):
        labels = validate_labels([(lp.name, lp.value) for lp in series.labels], limits, where=f"series[{i}].labels")
        for j, sample in enumerate(series.samples):
            try:
                decoded = decode(sample.raw_profile, limits=limits)
            except ProfileFormatError as e:
                at = f"series[{i}].samples[{j}].raw_profile" + (f" ({e.where})" if e.where else "")
                raise ProfileFormatError(FMT, f"bad raw profile: {e.reason}", at) from None
            out.append((dict(labels), decoded, sample.ID))
    return out


def parse_push_request(body: bytes, *, content_type: str = "application/proto", limits: Limits = DEFAULT_LIMITS) -> push_pb2.PushRequest:
    """The PushRequest message of ``body`` (gunzipped if needed), profiles not decoded."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    data = maybe_gunzip(bytes(body), FMT, limits)
    req = push_pb2.PushRequest()
    if mime in JSON_TYPES or mime.endswith("+json"):
        try:
            text = data.decode("utf-8")
            json_format.Parse(text, req, ignore_unknown_fields=True, max_recursion_depth=16)
        except (json_format.ParseError, UnicodeDecodeError, ValueError, TypeError, RecursionError) as e:
            raise ProfileFormatError(FMT, f"invalid Connect JSON ({_short(e)})") from None
    elif mime in PROTO_TYPES:
        try:
            req.ParseFromString(data)
        except (DecodeError, ValueError, RecursionError) as e:
            raise ProfileFormatError(FMT, f"not a valid push.v1.PushRequest message ({_short(e)})") from None
    else:
        raise ProfileFormatError(FMT, f"unsupported content type {content_type!r} (want application/proto or application/json)")
    return req


def validate_labels(pairs: list[tuple[str, str]], limits: Limits = DEFAULT_LIMITS, *, where: str = "labels") -> dict[str, str]:
    """Validate series labels (see the module contract); adds ``service_name`` if absent."""
    if len(pairs) > limits.max_labels_per_sample:
        raise ProfileFormatError(FMT, f"{len(pairs)} labels exceed the limit of {limits.max_labels_per_sample}", where)
    labels: dict[str, str] = {}
    for k, (name, value) in enumerate(pairs):
        at = f"{where}[{k}]"
        if not LABEL_NAME_RE.match(name):
            raise ProfileFormatError(FMT, f"invalid label name {name[:64]!r}", at)
        if len(name) > limits.max_string_length or len(value) > limits.max_string_length:
            raise ProfileFormatError(FMT, f"label {name[:64]!r} longer than {limits.max_string_length} characters", at)
        if name in labels:
            raise ProfileFormatError(FMT, f"duplicate label name {name!r}", at)
        labels[name] = value
    if not labels.get(SERVICE_NAME):
        labels[SERVICE_NAME] = UNSPECIFIED_SERVICE
    return labels


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 200 else text[:200] + "…"
