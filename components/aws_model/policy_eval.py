"""A small evaluator of IAM policy statements (identity and resource policies).

Contract: :func:`decide` returns ``"deny"`` when an explicit Deny statement matches the
request, else ``"allow"`` when an Allow statement matches, else ``None`` (implicit deny).
A statement matches when its principal (resource policies only), action, resource and every
condition match. Actions and resources use IAM wildcards (``*``, ``?``), actions
case-insensitively. Principals: ``"*"``/``{"AWS": "*"}`` matches everyone; an account
(``123456789012`` or ``arn:aws:iam::123456789012:root``) matches that account's IAM
principals only *through delegation* (reported as ``"account"``, so the caller must also
hold an identity-policy allow); an exact ARN or ``{"Service": ...}`` matches directly.
Conditions: the String*, Arn*, Bool and Null operators, with ``IfExists``; a missing key
fails a positive operator and satisfies a negated one. Anything else raises ValueError, so
a policy the evaluator does not understand is never judged silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.aws_model.graph import as_list, doc


@dataclass(frozen=True)
class Principal:
    """Who calls: ``kind`` is ``AWS`` (an IAM role/user ARN) or ``Service`` (a service principal)."""

    kind: str
    id: str

    @property
    def account(self) -> str:
        return self.id.split(":")[4] if self.kind == "AWS" and self.id.startswith("arn:") else ""


@dataclass(frozen=True)
class Request:
    """One API call: action, resource ARN and the request context (condition keys)."""

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def _glob(pattern: str, value: str, *, fold: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if fold else 0) is not None


def _any_glob(patterns: Any, value: str, *, fold: bool = False) -> bool:
    return any(_glob(str(p), value, fold=fold) for p in as_list(patterns))


def principal_match(statement: Mapping[str, Any], principal: Principal) -> str | None:
    """``"direct"``, ``"account"`` (delegation to the caller's account) or None."""
    if "NotPrincipal" in statement:
        raise ValueError("NotPrincipal is not supported by this evaluator")
    spec = statement.get("Principal")
    if spec == "*":
        return "direct"
    if not isinstance(spec, Mapping):
        return None
    found = None
    for value in as_list(spec.get(principal.kind)):
        if value == "*" or value == principal.id:
            return "direct"
        if (
            principal.kind == "AWS"
            and principal.account
            and value
            in (
                principal.account,
                f"arn:aws:iam::{principal.account}:root",
            )
        ):
            found = "account"
    return found


def _condition(op: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    if op.startswith(("ForAnyValue:", "ForAllValues:")):
        raise ValueError(f"condition set operator {op} is not supported")
    if_exists = op.endswith("IfExists")
    base = op[: -len("IfExists")] if if_exists else op
    lowered = {k.lower(): v for k, v in context.items()}
    actual = lowered.get(key.lower())
    wanted = [str(v) for v in as_list(expected)]
    if base == "Null":
        return (actual is None) == (wanted[0].lower() == "true")
    negated = "Not" in base
    if actual is None:
        return if_exists or negated
    if base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
        hit = actual in wanted
    elif base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        hit = actual.lower() in (w.lower() for w in wanted)
    elif base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
        hit = any(_glob(w, actual) for w in wanted)
    elif base == "Bool":
        hit = actual.lower() in (w.lower() for w in wanted)
    else:
        raise ValueError(f"condition operator {op} is not supported")
    return hit != negated


def conditions_hold(statement: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Every key of every operator in the statement's Condition holds for ``context``."""
    for op, block in (statement.get("Condition") or {}).items():
        for key, expected in block.items():
            if not _condition(op, key, expected, context):
                return False
    return True


def _action_resource(
    statement: Mapping[str, Any], request: Request, *, resource_policy: bool
) -> bool:
    if "NotAction" in statement:
        action_ok = not _any_glob(statement["NotAction"], request.action, fold=True)
    else:
        action_ok = _any_glob(statement.get("Action"), request.action, fold=True)
    if "NotResource" in statement:
        resource_ok = not _any_glob(statement["NotResource"], request.resource)
    else:
        resource_ok = _any_glob(
            statement.get("Resource", "*" if resource_policy else None), request.resource
        )
    return action_ok and resource_ok


def statements(policy: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document (JSON string or dict)."""
    return as_list((doc(policy) or {}).get("Statement"))


def decide(
    policy_statements: Iterable[Mapping[str, Any]], request: Request, *, resource_policy: bool
) -> str | None:
    """``"deny"``, ``"allow"``/``"account"`` (resource policy delegating to the account) or None."""
    verdict = None
    for s in policy_statements:
        if not _action_resource(s, request, resource_policy=resource_policy):
            continue
        match = principal_match(s, request.principal) if resource_policy else "direct"
        if match is None or not conditions_hold(s, request.context):
            continue
        if s.get("Effect") == "Deny":
            return "deny"
        verdict = "allow" if match == "direct" or verdict == "allow" else "account"
    return verdict
