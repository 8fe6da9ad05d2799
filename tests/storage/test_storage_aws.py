"""The shared boto3 clients take their region from the environment ECS and the Ray nodes set."""

from __future__ import annotations

import pytest

from fleetprof.storage import aws


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_region_from_either_variable(monkeypatch, variable):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv(variable, "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"key-for-{variable}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert aws.client("dynamodb").meta.region_name == "eu-west-3"


def test_aws_region_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-for-precedence")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert aws.client("s3").meta.region_name == "ap-south-1"
