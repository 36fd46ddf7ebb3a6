"""graphgate's full interceptor chain on a cheap authenticated RPC.

The server process starts its own embedded PostgreSQL, Valkey and SeaweedFS in
a temporary directory and serves the production chain (telemetry, audit,
errors, admission, authentication, fingerprint, rate limit, validation,
authorization). The call is ``AnalyzeQuery("RETURN 1")``: authenticated, but
its handler touches no store, so what the report shows beyond the echo
baseline is the chain itself (JWT or API-key check, one Valkey round trip for
revocation and rate limit) plus protobuf and the query firewall's parse.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]

from benchmarks.case import Call, Case, SetupResult
from benchmarks.transports import grpc_channel
from graphgate.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    common_pb2,
    graph_pb2,
    graph_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
)

__all__ = ["CASES"]

_SECRET = "bench-only-jwt-signing-key-" + "0123456789abcdef" * 4
_TIMEOUT_S = 10.0


class ChainServer:
    """A graphgate server (and optionally its REST sidecar) with everything it
    started, stopped together. Every benchmark that needs the real service
    starts it through this class."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._data_dir: Path | None = None
        self._embedded: Any = None
        self._server: Any = None
        self._gateway: Any = None
        self._stores: Any = None

    @property
    def stores(self) -> Any:
        """The running server's stores (``Stores``: engine, pools, clients), once started."""
        if self._stores is None:
            raise RuntimeError("the server has not started")
        return self._stores

    async def start(
        self,
        address: str,
        *,
        rate_limits: bool,
        bcrypt_rounds: int = 4,
        operator_key: str | None = None,
        gateway_address: str | None = None,
        **settings: object,
    ) -> int:
        """Serve gRPC at ``address`` (and the sidecar at ``gateway_address``);
        returns the gRPC port. ``settings`` are further ``Settings`` fields."""
        from graphgate.clients.gateway import GatewayOptions, start_gateway
        from graphgate.server.app import GraphgateServer
        from graphgate.server.assembly import build_services
        from graphgate.server.audit import AuditLog
        from graphgate.server.embedded import EmbeddedStores
        from graphgate.server.lifecycle import open_stores
        from graphgate.server.runner import resolve
        from graphgate.server.settings import Settings

        data_dir = self._data_dir = Path(tempfile.mkdtemp(prefix="graphgate-bench-"))
        self._embedded = EmbeddedStores(data_dir / "embedded", postgres=True, valkey=True, s3=True)
        endpoints = self._embedded.start()
        resolved = resolve(
            Settings(
                data_dir=data_dir,
                jwt_secret_key=_SECRET,
                bcrypt_rounds=bcrypt_rounds,
                api_key_bcrypt_rounds=4,
                rate_limit_enabled=rate_limits,
                # Limits far above what the run reaches: the cost is measured,
                # not the refusals.
                rate_limits=(
                    "analytics=100000000/60,query=100000000/60,auth_other=100000000/60,"
                    "register=1000000/3600"
                ),
                security_audit_enabled=True,
                operator_api_key=operator_key,
                **settings,  # type: ignore[arg-type]
            ),
            endpoints,
        )
        stores = await self._stack.enter_async_context(open_stores(resolved, create_bucket=True))
        self._stores = stores
        services = build_services(resolved, stores, AuditLog(enabled=True))
        self._stack.push_async_callback(services.aclose)
        self._server = GraphgateServer(services)
        port: int = await self._server.start(address)
        if gateway_address is not None:
            host, _, http_port = gateway_address.rpartition(":")
            options = GatewayOptions(upstream=f"127.0.0.1:{port}")
            self._gateway = await start_gateway(options, host, int(http_port))
        return port

    async def stop(self, grace: float | None) -> None:
        if self._gateway is not None:
            await self._gateway.stop()
        if self._server is not None:
            await self._server.drain(pause=0, grace=grace or 0)
        await self._stack.aclose()
        if self._embedded is not None:
            self._embedded.stop()
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)


async def chain_server(address: str) -> ChainServer:
    """The production chain with rate limits on."""
    server = ChainServer()
    await server.start(address, rate_limits=True)
    return server


async def chain_server_without_rate_limits(address: str) -> ChainServer:
    """The production chain with RATE_LIMIT_ENABLED=false (revocation still checked)."""
    server = ChainServer()
    await server.start(address, rate_limits=False)
    return server


async def _session(channel: grpc.aio.Channel) -> tuple[str, str]:
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    reply = await auth.Register(
        auth_pb2.RegisterRequest(
            email="bench@example.com",
            password="Gq7!vR2#mZ9@kL4$",  # noqa: S106 - a benchmark-only account
            name="Bench",
        )
    )
    token = reply.session.access_token
    key = await keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name="bench"),
        metadata=[("authorization", f"Bearer {token}")],
    )
    return token, key.api_key


async def jwt_setup(channel: grpc.aio.Channel) -> SetupResult:
    """A signed-in user's bearer token."""
    token, _ = await _session(channel)
    return {"authorization": f"Bearer {token}"}


async def api_key_setup(channel: grpc.aio.Channel) -> SetupResult:
    """A user's API key."""
    _, key = await _session(channel)
    return {"x-api-key": key}


def analyze_call(channel: grpc.aio.Channel, setup: SetupResult) -> Call:
    """AnalyzeQuery("RETURN 1") with the setup's credentials."""
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    request = graph_pb2.AnalyzeQueryRequest(query="RETURN 1")
    metadata = tuple(setup.items())

    async def call() -> object:
        return await stub.AnalyzeQuery(request, metadata=metadata, timeout=_TIMEOUT_S)

    return call


async def _bare_analyze(
    request: graph_pb2.AnalyzeQueryRequest, context: Any
) -> graph_pb2.AnalyzeQueryResponse:
    from graphgate.server.services.cypher.analyzer import analyze
    from graphgate.server.services.graphs import QUERY_CLASS_VALUES

    analysis = analyze(request.query)
    return graph_pb2.AnalyzeQueryResponse(
        query_class=QUERY_CLASS_VALUES[analysis.query_class], reasons=analysis.reasons
    )


async def bare_analyze_server(address: str) -> grpc.aio.Server:
    """A bare grpc.aio server with AnalyzeQuery alone (the firewall's parse, the same
    protobuf, no chain): the chain cases' own floor."""
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        _bare_analyze,
        request_deserializer=graph_pb2.AnalyzeQueryRequest.FromString,
        response_serializer=graph_pb2.AnalyzeQueryResponse.SerializeToString,
    )
    service = grpc.method_handlers_generic_handler(
        "graphgate.v1.GraphService", {"AnalyzeQuery": handler}
    )
    server.add_generic_rpc_handlers((service,))
    server.add_insecure_port(address)
    await server.start()
    return server


CASES: tuple[Case[Any], ...] = (
    Case(
        name="analyze_bare",
        summary="AnalyzeQuery on a bare grpc.aio server (no chain): the chain cases' floor",
        server=bare_analyze_server,
        connect=grpc_channel,
        call=analyze_call,
    ),
    Case(
        name="chain_jwt",
        summary="AnalyzeQuery through the chain, JWT (revocation + rate limit: 1 Valkey trip)",
        server=chain_server,
        connect=grpc_channel,
        call=analyze_call,
        setup=jwt_setup,
        start_timeout=90.0,
    ),
    Case(
        name="chain_api_key",
        summary="AnalyzeQuery through the whole chain, API key (cached verification, no bcrypt)",
        server=chain_server,
        connect=grpc_channel,
        call=analyze_call,
        setup=api_key_setup,
        start_timeout=90.0,
    ),
    Case(
        name="chain_api_key_no_rate_limit",
        summary="chain_api_key with rate limiting switched off",
        server=chain_server_without_rate_limits,
        connect=grpc_channel,
        call=analyze_call,
        setup=api_key_setup,
        start_timeout=90.0,
    ),
)


async def graph_setup(channel: grpc.aio.Channel) -> SetupResult:
    """An API key and a graph with a small social network (2,000 people)."""
    key = (await api_key_setup(channel))["x-api-key"]
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    metadata = (("x-api-key", key),)
    created = await stub.CreateGraph(
        graph_pb2.CreateGraphRequest(
            name="bench",
            schema=[
                "CREATE NODE TABLE Person(id INT64 PRIMARY KEY)",
                "CREATE REL TABLE Knows(FROM Person TO Person)",
            ],
        ),
        metadata=metadata,
    )
    graph_id = created.graph.graph_id
    for query in (
        "UNWIND range(0, 1999) AS i CREATE (:Person {id: i})",
        "MATCH (a:Person), (b:Person) WHERE b.id = (a.id * 7 + 1) % 2000 CREATE (a)-[:Knows]->(b)",
        "MATCH (a:Person), (b:Person) WHERE b.id = (a.id * 13 + 5) % 2000 CREATE (a)-[:Knows]->(b)",
    ):
        await stub.ExecuteQuery(
            graph_pb2.ExecuteQueryRequest(graph_id=graph_id, query=query), metadata=metadata
        )
    return {"x-api-key": key, "graph-id": graph_id}


def _query_call(channel: grpc.aio.Channel, setup: SetupResult, query: str) -> Call:
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    request = graph_pb2.ExecuteQueryRequest(
        graph_id=setup["graph-id"],
        query=query,
        parameters={"id": common_pb2.Value(int_value=42)},
    )
    metadata = (("x-api-key", setup["x-api-key"]),)

    async def call() -> object:
        return await stub.ExecuteQuery(request, metadata=metadata, timeout=_TIMEOUT_S)

    return call


def return_one_call(channel: grpc.aio.Channel, setup: SetupResult) -> Call:
    """ExecuteQuery("RETURN 1") through the chain and a graph worker."""
    return _query_call(channel, setup, "RETURN 1")


def two_hop_call(channel: grpc.aio.Channel, setup: SetupResult) -> Call:
    """An anchored, parameterized 2-hop count through the chain and a graph worker."""
    return _query_call(
        channel,
        setup,
        "MATCH (a:Person {id: $id})-[:Knows]->()-[:Knows]->(c) RETURN count(c)",
    )


CASES += (
    Case(
        name="graph_return_one",
        summary="ExecuteQuery RETURN 1: chain, firewall, graph worker (API key)",
        server=chain_server,
        connect=grpc_channel,
        call=return_one_call,
        setup=graph_setup,
        start_timeout=90.0,
    ),
    Case(
        name="graph_two_hop",
        summary="ExecuteQuery anchored parameterized 2-hop count over 2,000 people",
        server=chain_server,
        connect=grpc_channel,
        call=two_hop_call,
        setup=graph_setup,
        start_timeout=90.0,
    ),
)
