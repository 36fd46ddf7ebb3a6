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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc.aio  # type: ignore[import-untyped, unused-ignore]  # no stubs in the dev deps

from benchmarks.case import Call, CallFailed, Case, SetupResult
from benchmarks.cases.chain import ChainServer
from benchmarks.transports import grpc_channel

__all__ = ["CASES"]

_TIMEOUT_S = 10.0


async def grpc_server(address: str) -> ChainServer:
    """The production chain, reached over gRPC at ``address``."""
    server = ChainServer()
    await server.start(address, rate_limits=True)
    return server


async def sidecar_server(address: str) -> ChainServer:
    """The same server on a free port, with the sidecar at ``address`` before it."""
    server = ChainServer()
    await server.start("127.0.0.1:0", rate_limits=True, gateway_address=address)
    return server


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
