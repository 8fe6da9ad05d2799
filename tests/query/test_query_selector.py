"""Selector parsing (Prometheus-style matchers, Pyroscope profile type ids)."""

from __future__ import annotations

import pytest

from fleetprof.query import Matcher, SelectorError, parse_matchers, parse_query

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def test_parse_full_query() -> None:
    ptype, ms = parse_query(CPU + '{service_name="x", env=~"p.*" ,pod!="a\\"b", zone!~`us-.*`}')
    assert ptype == CPU
    assert ms == [
        Matcher("service_name", "=", "x"), Matcher("env", "=~", "p.*"), Matcher("pod", "!=", 'a"b'),
        Matcher("zone", "!~", "us-.*"),
    ]


@pytest.mark.parametrize("q", [CPU, CPU + "{}", CPU + " { } ", CPU + "{a='b',}"])
def test_empty_or_trailing_comma(q: str) -> None:
    ptype, ms = parse_query(q)
    assert ptype == CPU and (ms == [] or ms == [Matcher("a", "=", "b")])


def test_profile_type_without_period_type() -> None:
    assert parse_query('memory:alloc_space:bytes::{service_name="x"}') == ("memory:alloc_space:bytes::", [Matcher("service_name", "=", "x")])


def test_escapes() -> None:
    assert parse_matchers(r'{a="\n\t\\\u00e9\x41"}') == [Matcher("a", "=", "\n\t\\éA")]


@pytest.mark.parametrize(
    "q",
    [
        "", "process_cpu{}", "a:b:c:d{}", "a:b:c:d:e:f", "a:b::d:e", "a:b:c:d:", "a:b:c::e", "::c::", CPU + "{", CPU + "{a}", CPU + '{a=}',
        CPU + '{a="b"', CPU + '{a="b" c="d"}', CPU + '{a=="b"}', CPU + '{1a="b"}', CPU + '{a=~"("}',
        CPU + '{a="b"} junk', CPU + '{a="\\q"}', CPU + '{a="\\U0011ffff"}', CPU + '{a=b}', CPU + '{,}',
        "x" * 20000,
    ],
)
def test_bad_queries_raise_selector_error(q: str) -> None:
    with pytest.raises(SelectorError):
        parse_query(q)


def test_matcher_semantics() -> None:
    assert Matcher("env", "!=", "x").matches(None)
    assert Matcher("env", "=", "").matches(None)
    assert not Matcher("env", "=~", "p").matches("prod")  # anchored
    assert Matcher("env", "=~", "p.*").matches("prod")
    assert Matcher("env", "!~", "p.*").matches("dev")
