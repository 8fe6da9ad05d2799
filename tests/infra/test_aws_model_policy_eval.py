"""The policy statement evaluator behind the key-grant check."""

from __future__ import annotations

import pytest

from components.aws_model.policy_eval import Principal, Request, decide, principal_match

ROLE = Principal("AWS", "arn:aws:iam::111122223333:role/app")
LOGS = Principal("Service", "logs.us-east-1.amazonaws.com")
KEY = "arn:aws:kms:us-east-1:111122223333:key/k"


def allow(**extra) -> dict:
    return {"Effect": "Allow", "Action": "kms:*", "Resource": "*", **extra}


def test_principals_direct_account_and_none():
    assert principal_match({"Principal": "*"}, LOGS) == "direct"
    assert principal_match({"Principal": {"AWS": ROLE.id}}, ROLE) == "direct"
    assert (
        principal_match({"Principal": {"AWS": "arn:aws:iam::111122223333:root"}}, ROLE) == "account"
    )
    assert principal_match({"Principal": {"AWS": "111122223333"}}, ROLE) == "account"
    assert principal_match({"Principal": {"AWS": "arn:aws:iam::999999999999:root"}}, ROLE) is None
    assert principal_match({"Principal": {"Service": LOGS.id}}, ROLE) is None
    with pytest.raises(ValueError, match="NotPrincipal"):
        principal_match({"NotPrincipal": {"AWS": ROLE.id}}, ROLE)


def test_actions_match_wildcards_case_insensitively_and_not_action():
    req = Request(ROLE, "kms:GenerateDataKeyWithoutPlaintext", KEY)
    assert decide([allow(Action="KMS:generatedatakey*")], req, resource_policy=False) == "allow"
    assert decide([allow(Action="kms:GenerateDataKey")], req, resource_policy=False) is None
    assert (
        decide([allow(NotAction="kms:Decrypt", Action=None)], req, resource_policy=False) == "allow"
    )


def test_identity_policies_match_the_resource():
    req = Request(ROLE, "kms:Decrypt", KEY)
    assert decide([allow(Resource=[KEY])], req, resource_policy=False) == "allow"
    assert (
        decide(
            [allow(Resource="arn:aws:kms:us-east-1:111122223333:key/other")],
            req,
            resource_policy=False,
        )
        is None
    )


def test_deny_beats_allow_and_account_delegation_is_reported():
    req = Request(ROLE, "kms:Decrypt", KEY)
    root = {"Principal": {"AWS": "arn:aws:iam::111122223333:root"}}
    assert decide([allow(**root)], req, resource_policy=True) == "account"
    assert (
        decide([allow(**root), allow(Principal={"AWS": ROLE.id})], req, resource_policy=True)
        == "allow"
    )
    deny = {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    assert decide([allow(Principal="*"), deny], req, resource_policy=True) == "deny"


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"kms:CallerAccount": "1"}}, {"kms:CallerAccount": "1"}, True),
        ({"StringEquals": {"kms:CallerAccount": "1"}}, {"kms:calleraccount": "1"}, True),
        ({"StringEquals": {"kms:CallerAccount": "1"}}, {}, False),
        ({"StringEqualsIfExists": {"kms:CallerAccount": "1"}}, {}, True),
        ({"StringNotEquals": {"kms:CallerAccount": "1"}}, {}, True),
        ({"StringNotEquals": {"kms:CallerAccount": "1"}}, {"kms:CallerAccount": "1"}, False),
        (
            {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::1:role/*"}},
            {"aws:PrincipalArn": "arn:aws:iam::1:role/x"},
            True,
        ),
        (
            {"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::1:role/*"}},
            {"aws:PrincipalArn": "arn:aws:iam::1:role/x"},
            False,
        ),
        (
            {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            {"kms:GrantIsForAWSResource": "true"},
            True,
        ),
        ({"Bool": {"kms:GrantIsForAWSResource": "true"}}, {}, False),
        ({"Null": {"aws:SourceArn": "true"}}, {}, True),
        ({"Null": {"aws:SourceArn": "false"}}, {}, False),
    ],
)
def test_conditions(condition, context, expected):
    req = Request(LOGS, "kms:Decrypt", KEY, context)
    verdict = decide([allow(Principal="*", Condition=condition)], req, resource_policy=True)
    assert (verdict == "allow") is expected


def test_unknown_operators_are_refused_loudly():
    req = Request(LOGS, "kms:Decrypt", KEY, {"k": "v"})
    for op in ("NumericEquals", "ForAnyValue:StringEquals"):
        with pytest.raises(ValueError, match="not supported"):
            decide([allow(Principal="*", Condition={op: {"k": "v"}})], req, resource_policy=True)
