"""Go generic type parameters are dropped from function names (Pyroscope's rule), so the
frames of one generic function merge: in the decoder, through Push and through /ingest."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import (  # noqa: E402
    CPU_TYPE,
    PUSH,
    PUSH_HEADERS,
    ServerProc,
    folded_of,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)

from fleetprof.formats.folded import encode_folded  # noqa: E402
from fleetprof.formats.pprof import decode_pprof, drop_go_type_parameters  # noqa: E402

STACKS = [
    ["main.main", "sync.(*Map[go.shape.string,go.shape.int]).Load", "runtime.mapaccess"],
    ["main.main", "sync.(*Map[go.shape.int,go.shape.int]).Load", "runtime.mapaccess"],
    ["main.main", "main.Sum[go.shape.float64].func1"],
    ["main.main", "main.Sum[go.shape.int].func1"],
    ["main.main", "main.plain"],
]
VALUES = [10, 20, 3, 4, 5]
MERGED = {
    "main.main;sync.(*Map[...]).Load;runtime.mapaccess": 30,
    "main.main;main.Sum[...].func1": 7,
    "main.main;main.plain": 5,
}


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("pkg.Map[go.shape.string,go.shape.int].Get", "pkg.Map[...].Get"),
        ("pkg.F[go.shape.struct { X int }].func2", "pkg.F[...].func2"),
        ("a[go.shape.int].b[go.shape.string].c", "a[...].c"),  # greedy up to the last ']'
        ("pkg.Map[int].Get", "pkg.Map[int].Get"),
        ("main.main", "main.main"),
    ],
)
def test_rule(name: str, want: str) -> None:
    assert drop_go_type_parameters(name) == want


def test_decoder_merges_instances() -> None:
    p = decode_pprof(pprof_bytes(STACKS, VALUES))
    got = dict(line.rsplit(" ", 1) for line in encode_folded(p).decode().splitlines())
    assert {k: int(v) for k, v in got.items()} == MERGED
    assert p.frames["name"].n_unique() == p.frames.height


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("go-generics")
    for servers in server_list():
        yield start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.1", tmp=tmp)


def test_push_and_ingest_merge_instances(server: ServerProc) -> None:
    data = pprof_bytes(STACKS, VALUES)
    r = httpx.post(server.url + PUSH, content=push_body("gopush", data), headers=PUSH_HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    r = httpx.post(server.url + "/ingest", params={"name": "goingest.cpu", "format": "pprof"}, content=data, timeout=30)
    assert r.status_code == 200, r.text
    with httpx.Client(base_url=server.url, timeout=30) as h:
        assert folded_of(h, CPU_TYPE + '{service_name="gopush"}') == MERGED
        assert folded_of(h, CPU_TYPE + '{service_name="goingest"}') == MERGED
