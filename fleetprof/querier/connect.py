"""The Connect unary protocol (connectrpc.com/docs/protocol), server side, for one POST.

* Request: ``Content-Type`` ``application/proto`` (binary protobuf, what Grafana's Go
  client sends) or ``application/json`` (protojson: lowerCamelCase or original field
  names, 64-bit integers as strings or numbers, enums as names or numbers; unknown fields
  ignored). ``Content-Encoding`` (or ``Connect-Content-Encoding``) ``gzip`` or
  ``identity``. ``Connect-Protocol-Version``, when sent, must be ``1``.
* Response: the same codec as the request; gzipped (``Content-Encoding: gzip``) when the
  client accepts gzip and the message is larger than :data:`GZIP_MIN_BYTES`.
* Errors: JSON ``{"code": "<connect code>", "message": ...}`` with the HTTP status of
  Connect's table (``invalid_argument`` 400, ``unauthenticated`` 401,
  ``permission_denied`` 403, ``not_found`` 404, ``resource_exhausted`` 429,
  ``unimplemented`` 501 (404 for an unknown procedure), ``internal`` 500).

Limits are checked before decoding: :data:`MAX_REQUEST_BYTES` on the body as sent and
after decompression.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from fastapi import Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from fleetprof.server.errors import ApiError
from fleetprof.server.limits import decode_content_encoding

PROTO = "application/proto"
JSON = "application/json"
MAX_REQUEST_BYTES = 1 << 20
"""Query requests are small; a larger body (sent or inflated) is ``resource_exhausted``."""
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class Codec:
    """How one request was encoded, so that its answer uses the same."""

    media: str
    gzip_ok: bool


def _media(content_type: str | None) -> str:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in (PROTO, "application/x-protobuf", "application/protobuf"):
        return PROTO
    if base == JSON:
        return JSON
    raise ApiError(415, f"unsupported Content-Type {content_type!r}: use {PROTO} or {JSON}",
                   code="unimplemented", headers={"Accept-Post": f"{PROTO}, {JSON}"})


def _check_protocol(request: Request) -> None:
    version = request.headers.get("connect-protocol-version")
    if version is not None and version.strip() != "1":
        raise ApiError(400, f"unsupported Connect-Protocol-Version {version!r} (this server speaks 1)")


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise ApiError(429, f"request body exceeds {MAX_REQUEST_BYTES} bytes", code="resource_exhausted")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ApiError(429, f"request body exceeds {MAX_REQUEST_BYTES} bytes", code="resource_exhausted")
    encoding = request.headers.get("content-encoding") or request.headers.get("connect-content-encoding")
    try:
        return decode_content_encoding(bytes(data), encoding, MAX_REQUEST_BYTES)
    except ApiError as e:
        if e.status in (413, 415):
            code = "resource_exhausted" if e.status == 413 else "unimplemented"
            raise ApiError(429 if e.status == 413 else 501, e.message, code=code) from None
        raise


async def read_message(request: Request, message: Message) -> Codec:
    """Parse ``request``'s body into ``message`` (in place); the codec to answer with."""
    _check_protocol(request)
    media = _media(request.headers.get("content-type"))
    data = await _body(request)
    try:
        if media == PROTO:
            message.ParseFromString(data)
        elif data.strip():
            json_format.Parse(data.decode("utf-8"), message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, RecursionError) as e:
        kind = "protobuf" if media == PROTO else "JSON"
        raise ApiError(400, f"invalid {kind} {message.DESCRIPTOR.full_name}: {e}") from None
    accept = request.headers.get("accept-encoding", "")
    return Codec(media, "gzip" in accept.lower())


def encode_raw(codec: Codec, data: bytes) -> Response:
    """Answer already-serialised message bytes (binary protobuf, or protojson text)."""
    headers = {}
    if codec.gzip_ok and len(data) > GZIP_MIN_BYTES:
        data = gzip.compress(data, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=codec.media, headers=headers)


def encode(codec: Codec, message: Message) -> Response:
    """Answer ``message`` in the request's codec (protojson: lowerCamelCase names, int64 as
    strings, enums as names, default values left out)."""
    if codec.media == PROTO:
        return encode_raw(codec, message.SerializeToString())
    return encode_raw(codec, json_format.MessageToJson(message, indent=None, ensure_ascii=False).encode())
