"""Prometheus-style profile selectors, as Pyroscope's ``query=`` parameter uses them.

``parse_query('process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="x",env=~"p.*"}')``
returns ``(profile_type, [Matcher, ...])``. The profile type must have five ``:``-separated
parts (Pyroscope's id), each of letters, digits, ``_``, ``.`` and ``-``; the selector may be
omitted or empty (``{}``). Label names follow Prometheus (``[a-zA-Z_][a-zA-Z0-9_.]*``);
values are double-, single- or back-quoted strings with Go-style escapes. Regex matchers are
fully anchored, as in Prometheus, and use the regex engine queries run them with (polars,
i.e. Rust's ``regex`` syntax: no look-around, no back-references); a pattern it rejects is a
:class:`SelectorError` at parse time. Any syntax error raises :class:`SelectorError` naming
the offending position.

Matching semantics (Prometheus): an absent label has the value ``""``, so ``env!="x"``
matches series without ``env`` and ``env=""`` matches only those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from fleetprof.formats.profile_types import check_profile_type_parts

OPS = ("=", "!=", "=~", "!~")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "`": "`", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}
MAX_SELECTOR_LEN = 16 * 1024


class SelectorError(ValueError):
    """A malformed query or label selector."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher ``name op value``."""

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise SelectorError(f"unknown matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            for pattern in (self.value, self.anchored):
                try:
                    _regex_probe(pattern)
                except pl.exceptions.PolarsError as e:
                    raise SelectorError(f"invalid regex for {self.name}: {_regex_reason(e)}") from None

    @property
    def anchored(self) -> str:
        """The regex anchored at both ends (Prometheus semantics)."""
        return f"^(?:{self.value})$"

    def matches(self, value: str | None) -> bool:
        v = value or ""
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = bool(_regex_probe(self.anchored, v)[0])
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        esc = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{esc}"'


def _regex_probe(pattern: str, value: str = "") -> pl.Series:
    """``value =~ pattern`` (unanchored) evaluated by polars; raises polars' error for a
    pattern its engine rejects."""
    return pl.Series("v", [value], dtype=pl.Utf8).str.contains(pattern)


def _regex_reason(err: Exception) -> str:
    """The one line of a polars regex error that says what is wrong."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("error: "):
            return ln.removeprefix("error: ")
    first = lines[0] if lines else ""
    return first.removeprefix("regex error: ").removeprefix("regex parse error:").strip() or "rejected"


def parse_query(query: str) -> tuple[str, list[Matcher]]:
    """Split ``<profile_type>{<matchers>}`` (see module docstring)."""
    q = query.strip()
    if not q:
        raise SelectorError("empty query")
    if len(q) > MAX_SELECTOR_LEN:
        raise SelectorError("query too long")
    brace = q.find("{")
    ptype = (q if brace < 0 else q[:brace]).strip()
    parts = ptype.split(":")
    # the period type may be absent (``name:type:unit::``), as for profiles without one
    if len(parts) != 5 or not all(parts[:3]) or bool(parts[3]) != bool(parts[4]):
        raise SelectorError(
            f"invalid profile type {ptype!r}: expected name:sample_type:sample_unit:period_type:period_unit"
            " (period type and unit both empty for a profile without a period type)"
        )
    try:
        check_profile_type_parts(parts)
    except ValueError as e:
        raise SelectorError(str(e)) from None
    matchers = parse_matchers(q[brace:]) if brace >= 0 else []
    return ptype, matchers


def parse_matchers(selector: str) -> list[Matcher]:
    """Parse ``{a="b", c=~"d.*"}`` into matchers (``""``/``{}`` = no matchers)."""
    s = selector.strip()
    if not s:
        return []
    if len(s) > MAX_SELECTOR_LEN:
        raise SelectorError("selector too long")
    if not s.startswith("{"):
        raise SelectorError("selector must start with '{'")
    i = 1
    out: list[Matcher] = []
    expect_item = True
    while True:
        i = _skip_ws(s, i)
        if i >= len(s):
            raise SelectorError("unterminated selector: missing '}'")
        if s[i] == "}":
            i += 1
            break
        if not expect_item:
            raise SelectorError(f"expected ',' or '}}' at position {i}")
        m = _NAME.match(s, i)
        if not m:
            raise SelectorError(f"expected a label name at position {i}")
        name = m.group(0)
        i = _skip_ws(s, m.end())
        op = next((o for o in ("=~", "!~", "!=", "=") if s.startswith(o, i)), None)
        if op is None:
            raise SelectorError(f"expected one of = != =~ !~ after {name!r} at position {i}")
        i = _skip_ws(s, i + len(op))
        value, i = _string(s, i)
        out.append(Matcher(name, op, value))
        i = _skip_ws(s, i)
        if i < len(s) and s[i] == ",":
            i += 1
            expect_item = True
        else:
            expect_item = False
    if _skip_ws(s, i) != len(s):
        raise SelectorError(f"unexpected text after selector at position {i}")
    return out


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\r\n":
        i += 1
    return i


def _string(s: str, i: int) -> tuple[str, int]:
    if i >= len(s) or s[i] not in "\"'`":
        raise SelectorError(f"expected a quoted value at position {i}")
    q = s[i]
    i += 1
    buf: list[str] = []
    while i < len(s):
        c = s[i]
        if c == q:
            return "".join(buf), i + 1
        if c == "\\" and q != "`":
            if i + 1 >= len(s):
                break
            e = s[i + 1]
            if e in _ESCAPES:
                buf.append(_ESCAPES[e])
                i += 2
                continue
            if e in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[e]
                hexs = s[i + 2:i + 2 + width]
                if len(hexs) != width or not all(h in "0123456789abcdefABCDEF" for h in hexs):
                    raise SelectorError(f"bad \\{e} escape at position {i}")
                try:
                    buf.append(chr(int(hexs, 16)))
                except (ValueError, OverflowError):
                    raise SelectorError(f"bad \\{e} escape at position {i}") from None
                i += 2 + width
                continue
            raise SelectorError(f"unknown escape \\{e} at position {i}")
        if c == "\n" and q != "`":
            raise SelectorError(f"newline in quoted value at position {i}")
        buf.append(c)
        i += 1
    raise SelectorError("unterminated quoted value")
