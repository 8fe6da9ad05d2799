"""Shared fixtures: the session moto server and the ``backend`` fixture (file+sqlite and
s3+dynamodb) live in ``tests/aws_fixtures.py``."""

from aws_fixtures import (  # noqa: F401 - re-exported pytest fixtures
    backend,
    dynamo_index_url,
    dynamo_table,
    moto_server,
    s3_bucket,
    s3_store_url,
)
