"""Shared AWS fixtures: one moto server on 127.0.0.1 for the whole session.

``moto_server`` starts ``ThreadedMotoServer(ip_address="127.0.0.1", port=0)`` and points the
standard AWS environment (``AWS_ENDPOINT_URL``, dummy credentials, region) at it, so code
under test (and its subprocesses, which inherit the environment) uses boto3 unchanged.
``s3_bucket`` creates the session bucket; ``dynamo_table`` creates a fresh table with the
documented key design (``fleetprof.metastore.index.dynamo_table_spec``) per test;
``s3_store_url``/``dynamo_index_url`` give isolated URLs per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

BUCKET = "fleetprof-test"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a session-wide moto server; AWS env vars point at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ENDPOINT_URL", endpoint)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_SESSION_TOKEN", "testing")
    mp.setenv("AWS_DEFAULT_REGION", REGION)
    mp.setenv("AWS_REGION", REGION)
    mp.delenv("AWS_PROFILE", raising=False)
    try:
        yield endpoint
    finally:
        mp.undo()
        server.stop()


def aws_client(service: str):  # noqa: ANN201 - boto3 client
    from fleetprof.storage.aws import client

    return client(service)


@pytest.fixture(scope="session")
def s3_bucket(moto_server: str) -> str:
    aws_client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def create_dynamo_table(name: str) -> str:
    """Create a table with the documented key design (see fleetprof/metastore/index.py)."""
    from fleetprof.metastore.index import dynamo_table_spec

    client = aws_client("dynamodb")
    client.create_table(**dynamo_table_spec(name))
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name


@pytest.fixture
def dynamo_table(moto_server: str) -> str:
    return create_dynamo_table(f"fleetprof-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_store_url(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dynamo_index_url(dynamo_table: str) -> str:
    return f"dynamodb://{dynamo_table}"


BACKENDS = ("file+sqlite", "s3+dynamodb")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str]:  # noqa: ANN001
    """``(store_url, index_url)`` for each backend; the same test runs on both."""
    if request.param == "file+sqlite":
        return (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"
    store = request.getfixturevalue("s3_store_url")
    index = request.getfixturevalue("dynamo_index_url")
    return store, index
