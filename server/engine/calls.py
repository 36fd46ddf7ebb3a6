"""Typed calls on one worker channel: requests built, answers parsed into public messages.

The worker's query and schema responses are wire-compatible with their
``graphgate.v1`` counterparts (same field numbers and types; see
``worker.proto``), so the bytes a worker sends are parsed directly into the
message the API server returns: one parse, no row copied. A test keeps the
two descriptors aligned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from graphgate.server.errors import InvalidArgument
from graphgate.v1 import common_pb2, graph_pb2
from graphgate.worker.v1 import worker_pb2

_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"]

#: Each worker response type, and the public type parsed from its bytes instead.
WIRE_COMPATIBLE: dict[Any, Any] = {
    worker_pb2.ExecuteQueryResponse: graph_pb2.ExecuteQueryResponse,
    worker_pb2.StreamQueryResponse: graph_pb2.StreamQueryResponse,
    worker_pb2.GetSchemaResponse: graph_pb2.GetSchemaResponse,
    worker_pb2.ApplySchemaResponse: graph_pb2.UpdateSchemaResponse,
}


def _path(method: str) -> str:
    return f"/{_SERVICE.full_name}/{_SERVICE.methods_by_name[method].name}"


def _unary(channel: grpc.aio.Channel, method: str, request: Any, response: Any) -> Any:
    return channel.unary_unary(
        _path(method),
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


def _stream(channel: grpc.aio.Channel, method: str, request: Any, response: Any) -> Any:
    return channel.unary_stream(
        _path(method),
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


class WorkerCalls:
    """The multi-callables of one channel (built once per worker generation)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        w, g = worker_pb2, graph_pb2
        self.create_database = _unary(
            channel, "CreateDatabase", w.CreateDatabaseRequest, w.CreateDatabaseResponse
        )
        self.drop_database = _unary(
            channel, "DropDatabase", w.DropDatabaseRequest, w.DropDatabaseResponse
        )
        self.execute = _unary(
            channel, "ExecuteQuery", w.ExecuteQueryRequest, g.ExecuteQueryResponse
        )
        self.stream = _stream(channel, "StreamQuery", w.StreamQueryRequest, g.StreamQueryResponse)
        self.get_schema = _unary(channel, "GetSchema", w.GetSchemaRequest, g.GetSchemaResponse)
        self.apply_schema = _unary(
            channel, "ApplySchema", w.ApplySchemaRequest, g.UpdateSchemaResponse
        )
        self.load_file = _stream(channel, "LoadFile", w.LoadFileRequest, w.LoadFileResponse)
        self.ping = _unary(channel, "PingWorker", w.PingWorkerRequest, w.PingWorkerResponse)
        self.export_database = _unary(
            channel, "ExportDatabase", w.ExportDatabaseRequest, w.ExportDatabaseResponse
        )
        self.replace_database = _unary(
            channel, "ReplaceDatabase", w.ReplaceDatabaseRequest, w.ReplaceDatabaseResponse
        )


_FORMATS = {
    "csv": worker_pb2.FILE_FORMAT_CSV,
    "parquet": worker_pb2.FILE_FORMAT_PARQUET,
    "json": worker_pb2.FILE_FORMAT_JSON,
}


def milliseconds(seconds: float) -> int:
    """A positive timeout in whole milliseconds. Raises :class:`InvalidArgument` otherwise."""
    if seconds <= 0:
        raise InvalidArgument(public_message="timeout must be positive", reason="INVALID_LIMITS")
    return min(max(1, int(seconds * 1000)), 2**32 - 1)


def file_format_of(name: str) -> worker_pb2.FileFormat.ValueType:
    """The contract's format for ``csv``, ``parquet`` or ``json``; else :class:`InvalidArgument`."""
    if name not in _FORMATS:
        raise InvalidArgument(
            public_message="file_format must be csv, parquet or json", reason="INVALID_LOAD"
        )
    return _FORMATS[name]


def fill_query(
    request: worker_pb2.ExecuteQueryRequest | worker_pb2.StreamQueryRequest,
    parameters: Mapping[str, common_pb2.Value],
    read_only: bool,
    timeout_seconds: float,
    row_limit: int,
    max_result_bytes: int,
) -> None:
    """Set the parameters, access mode and limits shared by both query requests."""
    for name, value in parameters.items():
        request.parameters[name].CopyFrom(value)
    request.access_mode = (
        worker_pb2.ACCESS_MODE_READ_ONLY if read_only else worker_pb2.ACCESS_MODE_READ_WRITE
    )
    request.limits.timeout_ms = milliseconds(timeout_seconds)
    request.limits.row_limit = row_limit
    request.limits.max_result_bytes = max_result_bytes
