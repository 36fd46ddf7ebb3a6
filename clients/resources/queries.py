"""Cypher calls: ``client.query``, ``client.stream`` and ``client.analyze``.

The query RPCs are marked ``writes`` in the contract (a statement may write),
so they are never retried automatically; :meth:`analyze` is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from graphgate.clients.contract import rpc
from graphgate.clients.models import Analysis, QueryClass
from graphgate.clients.results import QueryResult
from graphgate.clients.transport import Op
from graphgate.clients.values import to_parameters
from graphgate.v1 import graph_pb2

EXECUTE = rpc("GraphService", "ExecuteQuery")
STREAM = rpc("GraphService", "StreamQuery")


def _timeout_ms(timeout: float | None) -> int:
    return 0 if timeout is None else max(1, math.ceil(timeout * 1000))


def execute(
    graph_id: str,
    cypher: str,
    params: Mapping[str, object] | None,
    *,
    timeout: float | None,
    row_limit: int,
) -> Op[QueryResult]:
    """The ExecuteQuery call; ``timeout`` also caps the engine's time on the server."""
    request = graph_pb2.ExecuteQueryRequest(
        graph_id=graph_id,
        query=cypher,
        parameters=to_parameters(params),
        timeout_ms=_timeout_ms(timeout),
        row_limit=row_limit,
    )
    return Op(EXECUTE, request, QueryResult.from_proto)


def stream_request(
    graph_id: str,
    cypher: str,
    params: Mapping[str, object] | None,
    *,
    timeout: float | None,
    row_limit: int,
) -> graph_pb2.StreamQueryRequest:
    """The StreamQuery request."""
    return graph_pb2.StreamQueryRequest(
        graph_id=graph_id,
        query=cypher,
        parameters=to_parameters(params),
        timeout_ms=_timeout_ms(timeout),
        row_limit=row_limit,
    )


def analyze(cypher: str) -> Op[Analysis]:
    """The AnalyzeQuery call."""
    return Op(
        rpc("GraphService", "AnalyzeQuery"),
        graph_pb2.AnalyzeQueryRequest(query=cypher),
        lambda r: Analysis(QueryClass.from_proto(r.query_class), list(r.reasons)),
    )
