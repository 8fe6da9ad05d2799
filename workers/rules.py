"""Recommendation rules and hotspot categories (in the spirit of CodeGuru Profiler).

A :class:`Rule` matches **frames** by a regular expression on the function name (searched,
case-insensitive unless the pattern says otherwise). Its *share* in a service is the
fraction of that service's CPU (or allocation) samples whose stack contains at least one
matching frame — each stack counted once however many frames match. A rule fires when the
share is ``>= threshold``; the finding carries its evidence: the share, the matched value,
the heaviest matching functions and the heaviest matching stack.

:data:`CATEGORIES` classify self time for the shared-hotspot table: a sample belongs to the
category of the matching frame nearest its leaf (categories are tried in order on each
frame; ``None`` when no frame of the stack matches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """Frame pattern + share threshold -> advice (see module docstring)."""

    rule_id: str
    category: str
    pattern: str
    threshold: float
    advice: str

    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)


CATEGORIES: tuple[tuple[str, str], ...] = (
    ("gc", r"(^runtime\.(gcBgMarkWorker|gcDrain|scanobject|markroot|gcAssist|bgsweep|mallocgc)|GarbageCollector|gc_collect|^PyGC_|G1ParScan|ZGC)"),
    ("json", r"(encoding/json|\bjson\.|simdjson|orjson|ujson|jackson|rapidjson|serde_json|JSON\.(parse|stringify))"),
    ("tls", r"(crypto/tls|crypto/aes|crypto/sha|crypto/ecdsa|crypto/rsa|\bssl_|SSL_|openssl|boringssl|\bEVP_|x509|aesni|gcm)"),
    ("logging", r"(\blogging\.|log4j|logback|go\.uber\.org/zap|\bzap\.|logrus|\bslog\.|\blog\.(Print|Fatal|Output)|Logger\.)"),
    ("regex", r"(regexp\.|\bre\.(match|search|sub|findall|compile|fullmatch)|\bsre_|pcre|java\.util\.regex|onig)"),
    ("compression", r"(compress/|gzip|zlib|\bflate|deflate|inflate|zstd|snappy|lz4|brotli)"),
    ("protobuf", r"(google\.golang\.org/protobuf|proto\.(Marshal|Unmarshal)|protobuf|upb_)"),
    ("allocation", r"(^runtime\.(mallocgc|newobject|makeslice|growslice)|\bmalloc\b|PyObject_Malloc|operator new)"),
    ("syscall", r"(^syscall\.|^runtime\.(futex|epollwait|netpoll)|internal/poll|\bsend(to|msg)?\b|\brecv(from|msg)?\b|\bwrite\b|\bread\b)"),
)

RULES: tuple[Rule, ...] = (
    Rule("json-serialization", "json", CATEGORIES[1][1], 0.10,
         "JSON encoding/decoding is a large share of CPU: use a faster codec (e.g. sonic/orjson/"
         "simdjson), avoid re-encoding unchanged payloads (cache them), or use protobuf on internal hops."),
    Rule("tls-handshakes", "tls", r"(Handshake|SSL_do_handshake|ssl3_|tls13_|ssl_handshake)", 0.05,
         "TLS handshakes are expensive: reuse connections (keep-alive, pooling) and enable session resumption."),
    Rule("crypto", "tls", CATEGORIES[2][1], 0.15,
         "Cryptography is a large share of CPU: check that AES-NI/ARMv8 crypto paths are used, prefer "
         "AES-GCM/ChaCha20 suites and terminate TLS once (not on every hop)."),
    Rule("logging", "logging", CATEGORIES[3][1], 0.05,
         "Logging costs a noticeable share of CPU: lower the level on hot paths, sample repetitive "
         "messages, use structured/async loggers and avoid formatting messages that are filtered out."),
    Rule("regex-compile", "regex", r"(regexp\.(Must)?Compile|\bre\.compile|sre_compile|sre_parse|Pattern\.compile)", 0.02,
         "Regular expressions are compiled on a hot path: compile them once (module level / static) and reuse them."),
    Rule("regex-matching", "regex", CATEGORIES[4][1], 0.10,
         "Regular-expression matching is expensive here: use plain string operations (prefix/contains) "
         "where possible, anchor patterns, or a linear-time engine (RE2)."),
    Rule("compression", "compression", CATEGORIES[5][1], 0.10,
         "Compression is a large share of CPU: lower the level, switch to a faster codec (zstd/lz4/snappy) "
         "or skip compressing small or already-compressed payloads."),
    Rule("garbage-collection", "gc", CATEGORIES[0][1], 0.15,
         "Garbage collection is a large share of CPU: reduce allocations on hot paths (pool/reuse buffers), "
         "and tune the collector (GOGC/GOMEMLIMIT, heap sizing)."),
    Rule("reflection", "reflection", r"(^reflect\.|java\.lang\.reflect|sun\.reflect)", 0.08,
         "Reflection is expensive: generate code or cache reflected metadata instead of reflecting per call."),
    Rule("string-formatting", "formatting", r"(fmt\.Sprintf|fmt\.Fprintf|String\.format|PyUnicode_Format|str\.format)", 0.05,
         "String formatting is a hot spot: build strings with builders/append APIs, avoid formatting in loops."),
    Rule("exceptions", "exceptions", r"(fillInStackTrace|runtime\.gopanic|PyErr_Fetch|traceback\.)", 0.03,
         "Exceptions/panics are thrown on a hot path: avoid using them for control flow."),
    Rule("allocation-churn", "allocation", r"(^runtime\.(mallocgc|newobject|makeslice|growslice)|PyObject_Malloc|operator new)", 0.20,
         "Allocation is a large share of CPU: preallocate slices/maps, reuse buffers and avoid boxing in hot loops."),
)
"""Default rule table."""

DEFAULT_RULES: tuple[Rule, ...] = RULES


def compile_categories(categories: tuple[tuple[str, str], ...] = CATEGORIES) -> list[tuple[str, re.Pattern[str]]]:
    return [(name, re.compile(pat, re.IGNORECASE)) for name, pat in categories]


def category_of(name: str, compiled: list[tuple[str, re.Pattern[str]]]) -> str | None:
    """First category whose pattern matches the function ``name`` (one call per unique frame)."""
    for cat, rx in compiled:
        if rx.search(name):
            return cat
    return None
