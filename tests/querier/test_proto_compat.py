"""The server's generated modules declare Pyroscope's messages exactly as the client's
copy of the published definitions does (names, numbers, types, JSON names)."""

from __future__ import annotations

from querier_support import Protos

from fleetprof.formats.proto import querier_pb2, settings_pb2, types_pb2

RENAMED = {"perftools.profiles.Profile": "google.v1.Profile"}


def _messages(module: object) -> list[object]:
    fd = module.DESCRIPTOR  # type: ignore[attr-defined]
    return list(fd.message_types_by_name.values())


def test_server_messages_match_the_published_definitions(pb: Protos) -> None:
    checked = 0
    for module in (types_pb2, querier_pb2, settings_pb2):
        for msg in _messages(module):
            theirs = pb.pool.FindMessageTypeByName(msg.full_name)
            for f in msg.fields:
                other = theirs.fields_by_name[f.name]
                assert (f.number, f.type, f.json_name, f.is_repeated) == (other.number, other.type, other.json_name, other.is_repeated), f.full_name
                if f.message_type is not None:
                    assert RENAMED.get(f.message_type.full_name, f.message_type.full_name) == other.message_type.full_name
                if f.enum_type is not None:
                    assert f.enum_type.full_name == other.enum_type.full_name
                    assert {v.name: v.number for v in f.enum_type.values} == {v.name: v.number for v in other.enum_type.values}
                checked += 1
    assert checked > 60
