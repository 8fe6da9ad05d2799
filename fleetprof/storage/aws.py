"""Shared boto3 clients (creating one costs ~100 ms; clients are thread-safe).

Clients are cached per (service, endpoint, region, access key) as read from the standard
AWS environment, so tests that repoint ``AWS_ENDPOINT_URL`` get fresh clients.
Retries: botocore ``standard`` mode, 5 attempts (exponential backoff with jitter).
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[tuple[str, ...], Any] = {}


def client(service: str) -> Any:
    """A cached boto3 client for ``service`` honouring ``AWS_ENDPOINT_URL`` and friends.

    The region is ``AWS_REGION`` (what ECS tasks and the Ray nodes' environment set, and
    which boto3 alone does not read), else ``AWS_DEFAULT_REGION``, else boto3's own chain."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    key = (
        service,
        os.environ.get("AWS_ENDPOINT_URL", ""),
        os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}", ""),
        region or "",
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
        os.environ.get("AWS_PROFILE", ""),
    )
    with _lock:
        c = _clients.get(key)
        if c is None:
            import boto3
            from botocore.config import Config

            cfg = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
            c = _clients[key] = boto3.session.Session().client(service, region_name=region, config=cfg)
        return c
