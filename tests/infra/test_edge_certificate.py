"""The certificate the ALB serves (components.edge): managed by the stack (ACM + DNS
validation in a Route 53 zone + alias record) or brought as an ARN of the deploying account
and region; bad combinations fail before anything is created, naming the key to set."""

from __future__ import annotations

import dataclasses

import pulumi
import pytest
from infra_support import one, rendered

from components.edge import check_certificate_arn
from components.mockrun import ACCOUNT_ID, render
from components.settings import Settings, SettingsError
from policies.offline import evaluate_rendering

CERT = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
LISTENER = "aws:lb/listener:Listener"
OLD_ARNS = {  # what Pulumi.staging.yaml / Pulumi.prod.yaml held before
    "staging": "arn:aws:acm:us-east-1:111122223333:certificate/"
    "5b1c2d3e-0000-4000-8000-staging00001",
    "prod": "arn:aws:acm:us-east-1:111122223333:certificate/9f8e7d6c-0000-4000-8000-prod00000001",
}
OWN_ARN = f"arn:aws:acm:us-east-1:{ACCOUNT_ID}:certificate/0c0c0c0c-0000-4000-8000-000000000001"
BRING_YOUR_OWN = {"fleetprof:domainName": "", "fleetprof:hostedZoneName": ""}


@pytest.mark.parametrize("stack", ("staging", "prod"))
def test_placeholder_certificate_of_another_account_fails_preview(stack):
    with pytest.raises(SettingsError) as err:
        render(stack, overrides={**BRING_YOUR_OWN, "fleetprof:certificateArn": OLD_ARNS[stack]})
    assert str(err.value) == (
        "fleetprof:certificateArn is in account 111122223333 but this stack deploys to "
        "123456789012: set fleetprof:certificateArn to a certificate of this account and region, "
        "or set fleetprof:domainName and fleetprof:hostedZoneName"
    )


@pulumi.runtime.test
def test_certificate_of_this_account_and_region_is_served_as_is():
    r = render("prod", overrides={**BRING_YOUR_OWN, "fleetprof:certificateArn": OWN_ARN})
    assert one(r, LISTENER, "edge-https").inputs["certificateArn"] == OWN_ARN
    assert r.of_type(CERT) == r.of_type(VALIDATION) == r.of_type(RECORD) == []
    assert evaluate_rendering(r) == []
    return r.program["edge"].url.apply(lambda u: _assert(u.startswith("https://edge-alb-")))


def test_certificate_of_another_region_fails_before_rendering():
    arn = OWN_ARN.replace("us-east-1", "eu-west-1")
    with pytest.raises(
        SettingsError, match=r"fleetprof:certificateArn is in region eu-west-1 .* us-east-1"
    ):
        render("prod", overrides={**BRING_YOUR_OWN, "fleetprof:certificateArn": arn})


def test_check_certificate_arn_compares_the_account():
    check_certificate_arn(OWN_ARN, ACCOUNT_ID)
    with pytest.raises(
        SettingsError, match="in account 111122223333 but this stack deploys to 210987654321"
    ):
        check_certificate_arn(OLD_ARNS["prod"], "210987654321")


@pytest.mark.parametrize("stack", ("staging", "prod"))
@pulumi.runtime.test
def test_managed_certificate_is_validated_in_the_zone_and_served(stack):
    r = rendered(stack)
    domain = r.config["fleetprof:domainName"]
    cert = one(r, CERT, "edge-cert")
    assert (cert.inputs["domainName"], cert.inputs["validationMethod"]) == (domain, "DNS")
    (option,) = cert.outputs["domainValidationOptions"]
    record = one(r, RECORD, "edge-cert-validation-record").inputs
    assert (record["name"], record["type"], record["records"]) == (
        option["resourceRecordName"],
        option["resourceRecordType"],
        [option["resourceRecordValue"]],
    )
    validation = one(r, VALIDATION, "edge-cert-validation")
    assert validation.inputs["certificateArn"] == cert.outputs["arn"]
    assert validation.inputs["validationRecordFqdns"] == [option["resourceRecordName"].rstrip(".")]
    https = one(r, LISTENER, "edge-https")
    assert https.inputs["certificateArn"] == cert.outputs["arn"]
    assert https.property_dependencies["certificateArn"] == [validation.urn]  # waits for validation
    alias = one(r, RECORD, "edge-alias").inputs
    alb = one(r, "aws:lb/loadBalancer:LoadBalancer", "edge-alb").outputs
    assert (alias["name"], alias["type"], alias["zoneId"]) == (domain, "A", record["zoneId"])
    assert alias["aliases"] == [
        {"name": alb["dnsName"], "zoneId": alb["zoneId"], "evaluateTargetHealth": True}
    ]
    assert r.exports["url"] == f"https://{domain}"
    return r.program["edge"].url.apply(lambda u: _assert(u == f"https://{domain}"))


def test_zone_missing_from_the_account_fails_preview():
    overrides = {
        "fleetprof:domainName": "profiles.corp.invalid",
        "fleetprof:hostedZoneName": "corp.invalid",
    }
    with pytest.raises(
        SettingsError,
        match=r"fleetprof:hostedZoneName 'corp.invalid' is not a public Route 53 hosted zone",
    ):
        render("staging", overrides=overrides)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"certificate_arn": OWN_ARN},
            "fleetprof:certificateArn and fleetprof:domainName are both set",
        ),
        ({"hosted_zone_name": ""}, "must be set together"),
        ({"domain_name": "profiles.example.org"}, "is not inside fleetprof:hostedZoneName"),
        (
            {"domain_name": "", "hosted_zone_name": "", "certificate_arn": "arn:aws:s3:::bucket"},
            "not an ARN of an ACM or IAM certificate",
        ),
    ],
)
def test_settings_reject_inconsistent_certificate_keys(changes, message):
    base: Settings = rendered("staging").program["settings"]
    assert (base.domain_name, base.hosted_zone_name) == (
        "profiles.staging.example.com",
        "example.com",
    )
    assert base.validate().https
    with pytest.raises(SettingsError, match=message):
        dataclasses.replace(base, **changes).validate()


def test_both_keys_in_a_stack_config_fail_preview():
    with pytest.raises(SettingsError, match="are both set"):
        render("prod", overrides={"fleetprof:certificateArn": OWN_ARN})


@pulumi.runtime.test
def test_dev_stays_plain_http_without_certificate():
    r = rendered("dev")
    assert r.of_type(CERT) == r.of_type(VALIDATION) == r.of_type(RECORD) == []
    assert [x.name for x in r.of_type(LISTENER)] == ["edge-http"]
    assert not r.program["settings"].https
    return r.program["edge"].url.apply(lambda u: _assert(u.startswith("http://edge-alb-")))


def _assert(cond: bool) -> None:
    assert cond
