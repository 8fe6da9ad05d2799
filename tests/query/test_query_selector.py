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


@pytest.mark.parametrize(
    ("matcher", "why"),
    [
        ('env=~"(?=p)"', "look-around"),
        ('env!~"a(?<!b)"', "look-around"),
        ("env=~`(a)\\1`", "backreferences"),
        ('env=~"a{1000}{1000}"', "size limit"),
        ('env=~"a)|(b"', "unopened group"),  # would break the anchoring
    ],
)
def test_regexes_are_checked_by_the_engine_that_runs_them(matcher: str, why: str) -> None:
    with pytest.raises(SelectorError, match=f"invalid regex for env: .*{why}"):
        parse_query(CPU + "{" + matcher + "}")


def test_regexes_python_rejects_but_polars_runs_are_accepted() -> None:
    (m,) = parse_matchers(r'{env=~"\\p{Greek}+"}')
    assert m.matches("αβγ") and not m.matches("abc")
    (m,) = parse_matchers('{env=~"[[:digit:]]+"}')
    assert m.matches("42") and not m.matches("4a")


@pytest.mark.parametrize(
    ("q", "part"),
    [
        ("process_cpu:cpu:<script>x</script>:cpu:nanoseconds", "sample unit"),
        ("process_cpu:c&u:nanoseconds:cpu:nanoseconds", "sample type"),
        ("proc'ess:cpu:nanoseconds:cpu:nanoseconds", "name"),
        ("process_cpu:cpu:nanoseconds:c\\pu:nanoseconds", "period type"),
        ("process_cpu:cpu:nanoseconds:cpu:nano>seconds", "period unit"),
    ],
)
def test_profile_type_parts_are_restricted_to_the_name_alphabet(q: str, part: str) -> None:
    with pytest.raises(SelectorError, match=f"in the {part} of the profile type"):
        parse_query(q + '{service_name="x"}')
