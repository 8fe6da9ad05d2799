"""The server-test helper itself: a port taken between choosing it and binding it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import serverutil
from serverutil import ServerProc, server_list, start_server


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


def test_start_server_retries_on_a_port_taken_in_between(servers: list[ServerProc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        chosen = iter([taken])
        real = serverutil.free_port
        monkeypatch.setattr(serverutil, "free_port", lambda: next(chosen, None) or real())
        s = start_server(servers, (tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}", tmp=tmp_path)
        assert s.port != taken
        assert "already in use" in (tmp_path / "server-0.log").read_text()
