"""The token table from an environment variable (``FLEETPROF_AUTH_TOKENS``: how ECS injects a
Secrets Manager secret), rotation through several tokens per tenant, and ``fleetprof token new``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serverutil import PUSH, PUSH_HEADERS, pprof_bytes, push_body
from typer.testing import CliRunner

from fleetprof.cli import app as cli_app
from fleetprof.server.app import create_app
from fleetprof.server.auth import configured_tokens, new_token_entry, parse_tokens
from fleetprof.server.cli import bind_refusal
from fleetprof.server.settings import Settings


def _client(tmp_path: Path, env: dict[str, str]) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    settings = Settings.load(
        env=env, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}", flush_max_age_s=0.05
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _push(c: TestClient, token: str | None) -> int:
    headers = {**PUSH_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    return c.post(PUSH, content=push_body("svc", pprof_bytes([["main"]], [5])), headers=headers).status_code


def _table(*tokens: str) -> str:
    return json.dumps({"tokens": {t: {"tenant": "acme", "scopes": ["read", "write"]} for t in tokens}})


def test_table_from_the_environment_enforces_auth(tmp_path: Path) -> None:
    for c in _client(tmp_path, {"FLEETPROF_AUTH_TOKENS": _table("old")}):
        assert _push(c, None) == 401
        assert _push(c, "nope") == 401
        assert _push(c, "old") == 200
        assert c.get("/api/v1/services", headers={"Authorization": "Bearer old"}).json() == ["svc"]


def test_rotation_overlaps_old_and_new_token(tmp_path: Path) -> None:
    """Step 2 of a rotation (both tokens in the table) admits both; step 3 (old removed)
    refuses the old one: tasks started from either table never lock out a moved client."""
    for c in _client(tmp_path / "both", {"FLEETPROF_AUTH_TOKENS": _table("old", "new")}):
        assert (_push(c, "old"), _push(c, "new")) == (200, 200)
    for c in _client(tmp_path / "new", {"FLEETPROF_AUTH_TOKENS": _table("new")}):
        assert (_push(c, "old"), _push(c, "new")) == (401, 200)


def test_an_empty_table_refuses_everyone(tmp_path: Path) -> None:
    """A deployed stack before any tenant has a token: auth is on, nothing gets in."""
    for c in _client(tmp_path, {"FLEETPROF_AUTH_TOKENS": '{"tokens": {}}'}):
        assert _push(c, None) == 401
        assert c.get("/api/v1/services").status_code == 401


def test_file_and_environment_are_exclusive_and_malformed_text_is_named(tmp_path: Path) -> None:
    tokens = tmp_path / "t.json"
    tokens.write_text(_table("a"))
    with pytest.raises(ValueError, match="not both"):
        configured_tokens(str(tokens), _table("b"))
    with pytest.raises(ValueError, match="FLEETPROF_AUTH_TOKENS: not JSON"):
        configured_tokens(None, "{tokens")
    with pytest.raises(ValueError, match="FLEETPROF_AUTH_TOKENS: bad grant"):
        configured_tokens(None, '{"t": {"tenant": "bad tenant!"}}')
    assert configured_tokens(None, None) is None
    assert set(configured_tokens(str(tokens), None) or {}) == {"a"}


def test_a_token_table_from_the_environment_allows_a_public_bind() -> None:
    settings = Settings.load(env={"FLEETPROF_HOST": "0.0.0.0", "FLEETPROF_AUTH_TOKENS": _table("a")})
    assert settings.auth_configured
    assert bind_refusal(settings.host, settings.auth_file or settings.auth_tokens, settings.insecure) is None
    assert bind_refusal("0.0.0.0", None, False) is not None


def test_new_token_entry_is_a_valid_random_grant() -> None:
    a, b = new_token_entry("acme", ["write", "read"]), new_token_entry("acme")
    assert a.keys() != b.keys()
    (token, grant), = a.items()
    assert len(token) > 40 and grant == {"tenant": "acme", "scopes": ["read", "write"]}
    assert parse_tokens(json.dumps({**a, **b}), "test")[token].tenant == "acme"
    for tenant, scopes in (("bad tenant", ["read"]), ("acme", ["admin"]), ("acme", [])):
        with pytest.raises(ValueError):
            new_token_entry(tenant, scopes)


def test_token_new_command_prints_one_entry() -> None:
    result = CliRunner().invoke(cli_app, ["token", "new", "--tenant", "acme", "--scopes", "read,metrics"])
    assert result.exit_code == 0, result.output
    (grant,) = json.loads(result.stdout).values()
    assert grant == {"tenant": "acme", "scopes": ["metrics", "read"]}
    assert CliRunner().invoke(cli_app, ["token", "new", "--tenant", "acme", "--scopes", "root"]).exit_code == 2
