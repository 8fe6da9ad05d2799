"""Settings, auth and limits as units."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from fleetprof.server.auth import Authenticator, load_tokens, tenant_from_header
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import RateLimiter, TokenBucket, gunzip_capped, validate_labels
from fleetprof.server.settings import Settings, parse_duration_s


def test_settings_defaults_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings.load(env={})
    assert (s.host, s.port) == ("127.0.0.1", 4040)
    assert s.storage == f"file://{tmp_path.resolve()}/.fleetprof/data"
    assert s.index == f"sqlite://{tmp_path.resolve()}/.fleetprof/index.db"
    env = {"FLEETPROF_PORT": "5000", "FLEETPROF_STORAGE": "s3://b/p", "FLEETPROF_RETENTION_S": "7d", "FLEETPROF_RETENTION_TENANTS": "a=1h,b=2d", "FLEETPROF_INGEST_RATE": "12.5"}
    s = Settings.load(env=env, port=6000)
    assert s.port == 6000 and s.storage == "s3://b/p" and s.ingest_rate == 12.5
    assert s.retention_for("a") == 3600 and s.retention_for("b") == 172_800 and s.retention_for("z") == 604_800
    assert not s.retention_runs_here()
    assert parse_duration_s("90s") == 90 and parse_duration_s("15m") == 900
    with pytest.raises(ValueError):
        parse_duration_s("soon")


def test_tenant_header_validation() -> None:
    assert tenant_from_header(None) == "anonymous"
    assert tenant_from_header("team-a.prod_1") == "team-a.prod_1"
    for bad in ("a b", "x" * 65, "tenant/../other", "ü", "..", "-lead", ".hidden"):
        with pytest.raises(ApiError):
            tenant_from_header(bad)


def test_token_file_and_authenticator(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"abc": {"tenant": "acme", "scopes": ["read"]}}))
    auth = Authenticator(load_tokens(f))
    assert auth.tenant("Bearer abc", None, "read") == "acme"
    assert auth.tenant("Basic " + base64.b64encode(b"user:abc").decode(), "acme", "read") == "acme"
    cases = [(None, None, "read", 401), ("Bearer zzz", None, "read", 401), ("Digest x", None, "read", 401),
             ("Basic !!!", None, "read", 401), ("Bearer abc", None, "write", 403), ("Bearer abc", "other", "read", 403)]
    for authz, org, scope, status in cases:
        with pytest.raises(ApiError) as e:
            auth.tenant(authz, org, scope)
        assert e.value.status == status
    f.write_text(json.dumps({"abc": {"scopes": ["read"]}}))
    with pytest.raises(ValueError):
        load_tokens(f)
    assert Authenticator(None).tenant(None, "t1", "write") == "t1"


def test_gunzip_cap_stops_bombs_and_handles_members() -> None:
    assert gunzip_capped(gzip.compress(b"ab") + gzip.compress(b"cd"), 10) == b"abcd"
    with pytest.raises(ApiError) as e:
        gunzip_capped(gzip.compress(b"\0" * 10_000_000), 1_000_000)
    assert e.value.status == 413
    with pytest.raises(ApiError) as e:
        gunzip_capped(b"\x1f\x8bnot gzip", 100)
    assert e.value.status == 400


def test_label_validation() -> None:
    validate_labels({"service_name": "x", "otel.scope.name": "y"}, max_labels=4, max_name=64, max_value=8)
    for labels in ({"1a": "x"}, {"a-b": "x"}, {"a": "x" * 9}, {f"k{i}": "" for i in range(5)}, {"a": "\x00"}):
        with pytest.raises(ApiError):
            validate_labels(labels, max_labels=4, max_name=64, max_value=8)


def test_token_bucket_refills_with_time() -> None:
    t = [0.0]
    b = TokenBucket(rate=10, burst=5, clock=lambda: t[0])
    assert b.take(5) == 0.0
    assert b.take(1) > 0
    t[0] = 0.5
    assert b.take(5) == 0.0
    lim = RateLimiter(rate=0)
    for _ in range(100):
        lim.check("t", 1000)  # disabled: never raises
