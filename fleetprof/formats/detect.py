"""Format detection by content, and the decode/encode dispatch used by the CLI and server.

:func:`detect_format` never trusts a file name. Rules, applied to the input (for gzip, to
the first 64 KiB of the decompressed stream):

* the JFR magic ``FLR\0`` → ``jfr`` (a Java Flight Recorder recording);
* empty or whitespace-only → ``folded`` (an empty profile);
* a JSON object (``{`` then ``"`` or ``}``) → ``speedscope``, unless its keys show another
  JSON profile format (Pyroscope flamebearer, OTLP profiles, a JSON ``PushRequest``, a
  Chrome ``.cpuprofile``), which is refused by name; a JSON array (``[{`` …, e.g. Chrome
  trace events) is refused too;
* text that starts like a legacy pprof text profile (``heap profile:``, ``--- contentionz``,
  ``--- threadz``, ``--- mutex:``, ``--- contention:``, ``threadcreate profile: total 3``
  and other ``<kind> profile: total N`` headers) or a Go goroutine dump is refused by name;
* other printable text (no control bytes but tab/CR/LF, ≤ 5 % invalid UTF-8) → ``folded``
  when at least 90 % of the sampled stack lines end in whitespace + an integer count, else
  ``lines`` (Pyroscope's one-sample-per-line format);
* binary whose first protobuf field is a valid ``profile.proto`` field → ``pprof``, unless
  field 1 holds a message whose own first field is length-delimited (a ``PushRequest``'s
  ``RawProfileSeries`` holds label pairs/samples, a pprof ``ValueType`` holds varints) →
  ``pushrequest``; an OTLP ``ExportProfilesServiceRequest`` (resource attributes where a
  ``PushRequest`` has label names) and a legacy gperftools binary CPU profile are refused
  by name;
* anything else raises :class:`ProfileFormatError` (format ``detect``).

Refusals are :class:`ProfileFormatError` (format ``detect``) whose message says what the
input looks like. :func:`decode` with an explicit ``folded`` or ``lines`` format refuses
input that detection recognises as something else (a JFR recording, a legacy text profile,
JSON, protobuf), ``speedscope`` refuses the other JSON formats above, and any format but
``jfr`` refuses a JFR recording, so that nothing is silently read as the wrong format.

:func:`decode` dispatches to the decoders (pprof and PushRequest decoders imported
lazily); a PushRequest decodes to the merge of its series' profiles. :func:`encode`
writes ``pprof``, ``folded``, ``speedscope``, ``flamebearer`` or ``tree`` bytes.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import TYPE_CHECKING, NoReturn

from fleetprof.formats.errors import DEFAULT_LIMITS, GZIP_MAGIC, Limits, ProfileFormatError

if TYPE_CHECKING:  # detection alone needs no profile model (nor polars)
    from fleetprof.model.profile import Profile

FORMATS = ("pprof", "folded", "speedscope", "lines", "pushrequest", "jfr")
"""Formats :func:`decode` reads."""

ENCODE_FORMATS = ("pprof", "folded", "speedscope", "flamebearer", "tree")
"""Formats :func:`encode` writes."""

PEEK_BYTES = 64 * 1024
_FOLDED_LINE = re.compile(rb"\s[0-9]+\s*$")
# pprof Profile fields → their wire type (2 = length-delimited, 0 = varint).
_PPROF_FIELDS = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 0, 8: 0, 9: 0, 10: 0, 11: 2, 12: 0, 13: 0, 14: 0}
_PPROF_PACKED = {13}  # comment (repeated int64) may be packed
JFR_MAGIC = b"FLR\0"
_CONVERT_HINT = "convert it to pprof protobuf first (e.g. go tool pprof -proto IN > OUT.pb.gz)"
# legacy pprof text headers (google/pprof's legacy parsers, Go's debug=1 output) → description
_GOROUTINE_HINT = "collect /debug/pprof/goroutine without debug= (protobuf) instead"
_LEGACY_TEXT: list[tuple[re.Pattern[bytes], str, str]] = [
    (re.compile(rb"heap profile:"), "a legacy pprof heap profile (text, 'heap profile: ...')", _CONVERT_HINT),
    (re.compile(rb"---\s*(?:contentionz|contention:|mutex:)"), "a legacy pprof contention/mutex profile (text, '--- contention:'/'--- mutex:')", _CONVERT_HINT),
    (re.compile(rb"---\s*threadz"), "a legacy pprof thread profile (text, '--- threadz')", _CONVERT_HINT),
    (re.compile(rb"---\s*(?:heapz|growthz|cpu|heap)\b"), "a legacy pprof Java/heapz profile (text, '--- heapz')", _CONVERT_HINT),
    (re.compile(rb"([a-z_]+) profile: total [0-9]+"), "a legacy pprof '{kind}' profile (text, debug=1 output)", _CONVERT_HINT),
    (re.compile(rb"goroutine [0-9]+ \[[^\]]*\]:"), "a Go goroutine dump (debug=2 output), not a profile", _GOROUTINE_HINT),
]
# JSON top-level keys → description (the first key found wins; speedscope is the default)
_JSON_KINDS: list[tuple[re.Pattern[bytes], str]] = [
    (re.compile(rb'"\$schema"\s*:\s*"https://www\.speedscope\.app'), ""),
    (re.compile(rb'"flamebearer"\s*:'), "Pyroscope flamebearer JSON (a rendered flame graph)"),
    (re.compile(rb'"resourceProfiles"\s*:|"resource_profiles"\s*:'), "an OTLP profiles request in JSON (ExportProfilesServiceRequest)"),
    (re.compile(rb'"series"\s*:\s*\[\s*\{\s*"(?:labels|samples)"'), "a Pyroscope PushRequest in JSON"),
    (re.compile(rb'"nodes"\s*:\s*\[\s*\{\s*"(?:id|callFrame)"'), "a Chrome/V8 .cpuprofile"),
]


def detect_format(data: bytes) -> str:
    """Name of the format of ``data`` (one of :data:`FORMATS`); see the module rules."""
    head = _peek(data if isinstance(data, bytes) else bytes(data))
    if head is None:
        return "pprof"  # undecodable gzip: pprof is the gzipped format; its decoder reports why
    if head.startswith(JFR_MAGIC):
        return "jfr"
    stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if not stripped:
        return "folded"
    if _is_json(stripped):
        return _json_kind(stripped)
    if _is_text(head):
        _refuse_legacy_text(stripped)
        return _folded_or_lines(head)
    return _protobuf_kind(head)


def _refuse(what: str, hint: str = "") -> NoReturn:
    raise ProfileFormatError("detect", f"input looks like {what}" + (f"; {hint}" if hint else ""))


def _is_json(stripped: bytes) -> bool:
    """A JSON object or array of objects (not a folded frame such as ``{closure}``)."""
    rest = stripped[1:].lstrip(b" \t\r\n")
    return (stripped[:1] == b"{" and rest[:1] in (b'"', b"}")) or (stripped[:1] == b"[" and rest[:1] in (b"{", b"]"))


def _json_kind(stripped: bytes) -> str:
    if stripped[:1] == b"[":
        _refuse("a JSON array (e.g. Chrome trace events), not a profile format fleetprof reads")
    for rx, what in _JSON_KINDS:
        if rx.search(stripped):
            if not what:
                return "speedscope"
            _refuse(what, "fleetprof reads speedscope JSON, pprof, folded, lines and JFR")
    return "speedscope"


def _refuse_legacy_text(stripped: bytes) -> None:
    first = stripped.split(b"\n", 1)[0].strip()
    for rx, what, hint in _LEGACY_TEXT:
        m = rx.match(first)
        if m:
            kind = m.group(1).decode("ascii", "replace") if m.groups() else ""
            _refuse(what.replace("{kind}", kind), hint)


def _peek(data: bytes) -> bytes | None:
    """The first :data:`PEEK_BYTES` of ``data``, decompressed if gzipped (``None`` if the
    gzip stream is bad)."""
    if not data.startswith(GZIP_MAGIC):
        return data[:PEEK_BYTES]
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = d.decompress(data, PEEK_BYTES)
    except zlib.error:
        return None
    return None if not head and not d.eof else head


def _is_text(head: bytes) -> bool:
    """No control bytes other than tab/newline/CR, and at most 5 % of the bytes invalid
    UTF-8 (text with a few bad bytes still decodes, with replacement)."""
    if head.translate(None, bytes(range(32, 256)) + b"\t\n\r"):
        return False
    invalid = head.decode("utf-8", "replace").count("\ufffd") - head.count("\ufffd".encode())
    return invalid * 20 <= len(head)


def _folded_or_lines(head: bytes) -> str:
    lines = head.split(b"\n")
    if len(head) == PEEK_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the peek
    stacks = [ln for ln in lines[:2000] if ln.strip() and not ln.lstrip().startswith(b"#")]
    if not stacks:
        return "folded"
    counted = sum(1 for ln in stacks if _FOLDED_LINE.search(ln))
    return "folded" if counted >= 0.9 * len(stacks) else "lines"


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            return None
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
    return None


def _protobuf_kind(head: bytes) -> str:
    if len(head) >= 16 and head[:8] == bytes(8) and head[8:16] in (b"\x03" + bytes(7), bytes(7) + b"\x03"):
        _refuse("a legacy gperftools binary CPU profile", _CONVERT_HINT)
    tag = _varint(head, 0)
    if tag is None:
        raise ProfileFormatError("detect", "unrecognised format (not text, JSON or protobuf)", "byte 0")
    field, wire = tag[0] >> 3, tag[0] & 7
    expected = _PPROF_FIELDS.get(field)
    if expected is None or (wire != expected and not (field in _PPROF_PACKED and wire == 2)):
        raise ProfileFormatError("detect", "unrecognised format (not text, JSON or protobuf)", "byte 0")
    if field == 1 and wire == 2:
        length = _varint(head, tag[1])
        if length is not None and length[0] > 0:
            inner = _varint(head, length[1])
            if inner is not None and inner[0] & 7 == 2:
                if _is_otlp(head, inner[1]):
                    _refuse("an OTLP profiles request (protobuf ExportProfilesServiceRequest)", "send pprof or a Pyroscope PushRequest instead")
                return "pushrequest"
    return "pprof"


def _is_otlp(head: bytes, pos: int) -> bool:
    """At ``pos``, the length of a ``PushRequest`` label pair, whose first field is the
    label's name (text), or of an OTLP ``Resource``, whose first field is a ``KeyValue``
    attribute (a message: its own tag ``0x0a`` follows the inner length)."""
    length = _varint(head, pos)
    if length is None or length[0] < 3 or head[length[1] : length[1] + 1] != b"\x0a":
        return False
    inner = _varint(head, length[1] + 1)
    return inner is not None and head[inner[1] : inner[1] + 1] == b"\x0a"


def decode(
    data: bytes,
    fmt: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
    keep_lines: bool = False,
    sample_rate: int | None = None,
) -> Profile:
    """Decode ``data`` in format ``fmt`` (detected when ``None``) into a :class:`Profile`.

    ``sample_rate`` (Hz) turns folded/lines/speedscope counts into CPU nanoseconds
    (Pyroscope's ``/ingest?sampleRate=``); other formats ignore it."""
    if fmt is None:
        fmt = detect_format(data)
    else:
        _check_explicit(data, fmt)
    if fmt == "jfr":
        from fleetprof.formats.jfr import decode_jfr

        return decode_jfr(data, limits=limits, keep_lines=keep_lines, sample_rate=sample_rate)
    if fmt == "pprof":
        from fleetprof.formats.pprof import decode_pprof

        return decode_pprof(data, limits=limits, keep_lines=keep_lines)
    if fmt == "folded":
        from fleetprof.formats.folded import decode_folded

        return decode_folded(data, limits=limits, keep_lines=keep_lines, sample_rate=sample_rate)
    if fmt == "lines":
        from fleetprof.formats.lines import decode_lines

        return decode_lines(data, limits=limits, keep_lines=keep_lines, sample_rate=sample_rate)
    if fmt == "speedscope":
        from fleetprof.formats.speedscope import decode_speedscope

        return decode_speedscope(data, limits=limits, keep_lines=keep_lines, sample_rate=sample_rate)
    if fmt == "pushrequest":
        return _decode_push(data, limits)
    raise ProfileFormatError("detect", f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})", "format")


def _check_explicit(data: bytes, fmt: str) -> None:
    """Refuse ``data`` that detection recognises as another format than ``fmt`` (a JFR
    recording, or anything but text for ``folded``/``lines``)."""
    if fmt == "jfr" or fmt not in FORMATS:
        return
    head = _peek(data if isinstance(data, bytes) else bytes(data))
    if head is None:
        return
    if head.startswith(JFR_MAGIC):
        _refuse(f"a JFR recording, not {fmt}", "use the jfr format (format=jfr)")
    stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if fmt == "speedscope" and _is_json(stripped):
        _json_kind(stripped)  # refuses other JSON profile formats by name
    if fmt not in ("folded", "lines"):
        return
    found = detect_format(head)  # refuses legacy text and other formats by name
    if found not in ("folded", "lines"):
        _refuse(f"{found} data, not {fmt} text", f"use format {found}")


def _decode_push(data: bytes, limits: Limits) -> Profile:
    """The merge of every series' profile of a PushRequest (series labels dropped)."""
    from fleetprof.formats.pushrequest import decode_push_request
    from fleetprof.model.merge import empty_profile, merge
    from fleetprof.model.profile import ValueType

    series = decode_push_request(data, limits=limits)
    profiles = [s.profile for s in series]
    if not profiles:
        return empty_profile([ValueType("samples", "count")])
    first = profiles[0].sample_types
    if any(p.sample_types != first for p in profiles):
        raise ProfileFormatError(
            "pushrequest", "series carry different sample types; decode them one by one with decode_push_request", "series"
        )
    return merge(profiles)


def encode(profile: Profile, fmt: str, *, type_index: int | None = None, max_nodes: int | None = None) -> bytes:
    """Encode ``profile`` as ``fmt`` (one of :data:`ENCODE_FORMATS`).

    ``type_index`` picks the value column (default: the profile's default type); pprof
    keeps every sample type unless ``type_index`` is given. ``max_nodes`` prunes the call
    tree first (pruned subtrees collapse into ``other`` frames, totals stay exact)."""
    if fmt not in ENCODE_FORMATS:
        raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(ENCODE_FORMATS)})")
    ti = profile.type_index() if type_index is None else type_index
    if not 0 <= ti < len(profile.sample_types):
        raise ValueError(f"type index {ti} out of range for {len(profile.sample_types)} sample types")
    if fmt == "flamebearer":
        from fleetprof.render.flamebearer import to_flamebearer

        return json.dumps(to_flamebearer(profile, ti, max_nodes=max_nodes), separators=(",", ":")).encode()
    if fmt == "tree":
        from fleetprof.render.tree_json import to_tree

        return json.dumps(to_tree(profile, ti, max_nodes=max_nodes), separators=(",", ":"), ensure_ascii=False).encode()
    if max_nodes is not None:
        from fleetprof.model.prune import prune

        profile = prune(profile, ti, max_nodes=max_nodes)
    if fmt == "pprof":
        from fleetprof.formats.pprof_encode import encode_pprof
        from fleetprof.model.merge import select_type

        return encode_pprof(profile if type_index is None else select_type(profile, ti))
    if fmt == "folded":
        from fleetprof.formats.folded import encode_folded

        return encode_folded(profile, ti)
    from fleetprof.formats.speedscope import encode_speedscope

    return encode_speedscope(profile, ti)


__all__ = ["ENCODE_FORMATS", "FORMATS", "decode", "detect_format", "encode"]
