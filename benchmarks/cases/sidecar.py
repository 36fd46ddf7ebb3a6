"""The REST sidecar's price: one cheap authenticated RPC over REST and over gRPC.

Both cases serve the production chain on embedded PostgreSQL, Valkey and
SeaweedFS (started in the server process, in a temporary directory) and call
``GetCurrentUser`` with an API key (verification cached: no bcrypt per call;
one Valkey round trip for revocation and rate limit, one PostgreSQL read):

- ``sidecar_grpc_me``: the RPC over gRPC, straight to the server;
- ``sidecar_rest_me``: ``GET /v1/auth/me`` with ``X-API-Key`` through the
  sidecar (uvicorn + Starlette, JSON transcoding, one shared grpc.aio channel
  on loopback to the same server). The sidecar runs in the server process,
  on the server's event loop, so "server CPU per call" includes its cost.

Compare the two rows with each other: calls/s ratio and added p50 latency.
The HTTP client is a minimal keep-alive HTTP/1.1 client with one connection
per call in flight (HTTP/1.1 cannot multiplex); httpx would cost the load
generator several times more CPU per call than grpc.aio does.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc.aio  # type: ignore[import-untyped, unused-ignore]  # no stubs in the dev deps

from benchmarks.case import Call, CallFailed, Case, SetupResult
from benchmarks.transports import grpc_channel

__all__ = ["CASES"]

_SECRET = "bench-only-jwt-signing-key-" + "0123456789abcdef" * 4
_TIMEOUT_S = 10.0


class _Stack:
    """The embedded stores, the gRPC server and (optionally) the sidecar."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._embedded: Any = None
        self._server: Any = None
        self._gateway: Any = None

    async def start(self, *, grpc_address: str, http_address: str | None) -> None:
        from graphgate.clients.gateway import GatewayOptions, start_gateway
        from graphgate.server.app import GraphgateServer
        from graphgate.server.assembly import build_services
        from graphgate.server.audit import AuditLog
        from graphgate.server.embedded import EmbeddedStores
        from graphgate.server.lifecycle import open_stores
        from graphgate.server.runner import resolve
        from graphgate.server.settings import Settings

        data_dir = Path(tempfile.mkdtemp(prefix="graphgate-bench-"))
        self._embedded = EmbeddedStores(data_dir / "embedded", postgres=True, valkey=True, s3=True)
        settings = resolve(
            Settings(
                data_dir=data_dir,
                jwt_secret_key=_SECRET,
                bcrypt_rounds=4,
                api_key_bcrypt_rounds=4,
                # Limits far above what a run reaches: the cost is measured, not refusals.
                rate_limits="auth_other=100000000/60,register=1000000/3600",
            ),
            self._embedded.start(),
        )
        stores = await self._stack.enter_async_context(open_stores(settings, create_bucket=True))
        services = build_services(settings, stores, AuditLog(enabled=True))
        self._stack.push_async_callback(services.aclose)
        self._server = GraphgateServer(services)
        port = await self._server.start(grpc_address)
        if http_address is not None:
            host, _, http_port = http_address.rpartition(":")
            options = GatewayOptions(upstream=f"127.0.0.1:{port}")
            self._gateway = await start_gateway(options, host, int(http_port))

    async def stop(self, grace: float | None) -> None:
        if self._gateway is not None:
            await self._gateway.stop()
        if self._server is not None:
            await self._server.drain(pause=0, grace=grace or 0)
        await self._stack.aclose()
        if self._embedded is not None:
            self._embedded.stop()


async def grpc_server(address: str) -> _Stack:
    """The production chain, reached over gRPC at ``address``."""
    stack = _Stack()
    await stack.start(grpc_address=address, http_address=None)
    return stack


async def sidecar_server(address: str) -> _Stack:
    """The same server on a free port, with the sidecar at ``address`` before it."""
    stack = _Stack()
    await stack.start(grpc_address="127.0.0.1:0", http_address=address)
    return stack


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client: one connection per call in flight.

    httpx costs several milliseconds of client CPU per call here and its pool
    slows down with many connections, which would cap what the load generator
    can offer; this client costs about what a grpc.aio call does, so the two
    cases are driven equally hard. It understands what the sidecar sends:
    ``Content-Length`` bodies, keep-alive.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request; returns the status and the body."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        reader, writer = (
            self._idle.pop()
            if self._idle
            else await asyncio.open_connection(self._host, self._port)
        )
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await reader.readexactly(length)
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return int(head[9:12]), payload

    async def aclose(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


@asynccontextmanager
async def http_client(address: str) -> AsyncIterator[HttpConnection]:
    """The sidecar at ``address`` through :class:`HttpConnection`."""
    host, _, port = address.rpartition(":")
    client = HttpConnection(host, int(port))
    try:
        yield client
    finally:
        await client.aclose()


def _account() -> dict[str, str]:
    # Random, so it is never a common password; the policy's classes are added.
    password = "Gq7!" + secrets.token_urlsafe(12) + "zQ9#"
    return {"email": f"bench-{secrets.token_hex(6)}@example.com", "password": password}


async def grpc_key(channel: grpc.aio.Channel) -> SetupResult:
    """Register a user and create an API key over gRPC."""
    from graphgate.v1 import auth_pb2, auth_pb2_grpc, keys_pb2, keys_pb2_grpc

    reply = await auth_pb2_grpc.AuthServiceStub(channel).Register(
        auth_pb2.RegisterRequest(name="Bench", **_account())
    )
    created = await keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name="bench"),
        metadata=[("authorization", f"Bearer {reply.session.access_token}")],
    )
    return {"x-api-key": created.api_key}


async def rest_key(client: HttpConnection) -> SetupResult:
    """Register a user and create an API key over REST."""
    json_type = {"Content-Type": "application/json"}
    body = json.dumps({"name": "Bench", **_account()}).encode()
    status, reply = await client.request("POST", "/v1/auth/register", json_type, body)
    if status != 200:
        raise CallFailed(f"HTTP_{status}")
    token = json.loads(reply)["session"]["accessToken"]
    auth = {**json_type, "Authorization": f"Bearer {token}"}
    status, reply = await client.request("POST", "/v1/api-keys", auth, b'{"name": "bench"}')
    if status != 200:
        raise CallFailed(f"HTTP_{status}")
    return {"x-api-key": json.loads(reply)["apiKey"]}


def grpc_me_call(channel: grpc.aio.Channel, setup: SetupResult) -> Call:
    """GetCurrentUser over gRPC with the setup's API key."""
    from graphgate.v1 import auth_pb2, auth_pb2_grpc

    me = auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser
    request = auth_pb2.GetCurrentUserRequest()
    metadata = tuple(setup.items())

    async def call() -> object:
        return await me(request, metadata=metadata, timeout=_TIMEOUT_S)

    return call


def rest_me_call(client: HttpConnection, setup: SetupResult) -> Call:
    """GET /v1/auth/me through the sidecar with the setup's API key."""
    headers = {"X-API-Key": setup["x-api-key"]}

    async def call() -> object:
        status, body = await asyncio.wait_for(
            client.request("GET", "/v1/auth/me", headers), _TIMEOUT_S
        )
        if status != 200:
            raise CallFailed(f"HTTP_{status}")
        return body

    return call


CASES: tuple[Case[Any], ...] = (
    Case(
        name="sidecar_grpc_me",
        summary="GetCurrentUser over gRPC, API key, full chain (the sidecar's baseline)",
        server=grpc_server,
        connect=grpc_channel,
        setup=grpc_key,
        call=grpc_me_call,
        start_timeout=120.0,
    ),
    Case(
        name="sidecar_rest_me",
        summary="GET /v1/auth/me through the REST sidecar, API key, same server",
        server=sidecar_server,
        connect=http_client,
        setup=rest_key,
        call=rest_me_call,
        start_timeout=120.0,
    ),
)
