"""Generated protobuf modules: pprof (``profile_pb2``), Pyroscope push.v1 (``push_pb2``,
``types_pb2``), querier.v1 (``querier_pb2``) and settings.v1 (``settings_pb2``).

Regenerate with ``make proto`` (``grpc_tools.protoc -Ifleetprof/formats/proto
--python_out=fleetprof/formats/proto``), then make the ``types_pb2`` import in
generated modules package-relative (``from . import types_pb2 as types__pb2``).
"""

from fleetprof.formats.proto import profile_pb2, push_pb2, querier_pb2, settings_pb2, types_pb2

__all__ = ["profile_pb2", "push_pb2", "querier_pb2", "settings_pb2", "types_pb2"]
