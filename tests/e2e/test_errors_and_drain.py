"""The errors link and graceful drain, through a real channel.

The servers here run the production interceptor chain in front of a test
servicer that fails or stalls on purpose.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphgate.server import app
from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import Services
from graphgate.server.errors import NotFound
from graphgate.v1 import auth_pb2, auth_pb2_grpc
from tests.conftest import status_of

SECRET = "postgres://admin:hunter2@db.internal:5432/prod /var/lib/graphgate/x.db"


class MisbehavingAuth:
    """Public RPCs that misbehave: CheckPassword fails with a secret in its
    exception, GetPasswordPolicy stalls."""

    def __init__(self) -> None:
        self.stall = 0.5

    async def CheckPassword(self, request: Any, context: Any) -> Any:
        if request.password == "boom":
            raise ValueError(f"cannot open {SECRET}")
        raise NotFound(detail=f"lookup failed at {SECRET}")

    async def GetPasswordPolicy(self, request: Any, context: Any) -> Any:
        await asyncio.sleep(self.stall)
        return auth_pb2.GetPasswordPolicyResponse()


@pytest.fixture
async def misbehaving(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[GraphgateServer, MisbehavingAuth]]:
    servicer = MisbehavingAuth()
    monkeypatch.setattr(app, "servicers", lambda _: {"graphgate.v1.AuthService": servicer})
    instance = GraphgateServer(services)
    await instance.start("127.0.0.1:0")
    yield instance, servicer
    await instance.drain(pause=0, grace=0.5)


def _all_text(error: grpc.RpcError) -> str:
    parts = [error.details() or ""]
    for key, value in error.trailing_metadata() or ():
        parts.append(f"{key}={value!r}")
    for key, value in error.initial_metadata() or ():
        parts.append(f"{key}={value!r}")
    return " ".join(parts)


@pytest.mark.security
async def test_c16_unexpected_exception_never_reaches_the_client(
    misbehaving: tuple[GraphgateServer, MisbehavingAuth],
) -> None:
    """C16: an exception carrying a secret becomes INTERNAL with a generic message."""
    server, _ = misbehaving
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            await stub.CheckPassword(
                auth_pb2.CheckPasswordRequest(password="boom"),
                metadata=[("x-request-id", "req-leak-check-1")],
            )
    error = caught.value
    assert status_of(error) == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error (request id req-leak-check-1)"
    text = _all_text(error)
    for fragment in ("hunter2", "db.internal", "/var/lib", "ValueError", "Traceback"):
        assert fragment not in text
    assert ("x-request-id", "req-leak-check-1") in tuple(error.trailing_metadata() or ())


@pytest.mark.security
async def test_c16_known_error_shows_only_its_public_message(
    misbehaving: tuple[GraphgateServer, MisbehavingAuth],
) -> None:
    """C16: a domain error's internal detail stays in the log; the client gets a reason."""
    server, _ = misbehaving
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            await stub.CheckPassword(auth_pb2.CheckPasswordRequest(password="missing"))
    error = caught.value
    assert status_of(error) == grpc.StatusCode.NOT_FOUND
    assert error.details() == "not found"
    assert "hunter2" not in _all_text(error)
    trailing = dict(error.trailing_metadata() or ())
    assert "grpc-status-details-bin" in trailing


async def test_request_id_is_generated_and_returned(
    misbehaving: tuple[GraphgateServer, MisbehavingAuth],
) -> None:
    server, servicer = misbehaving
    servicer.stall = 0
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        call = stub.GetPasswordPolicy(auth_pb2.GetPasswordPolicyRequest())
        await call
        generated = dict(await call.initial_metadata())["x-request-id"]
        call = stub.GetPasswordPolicy(
            auth_pb2.GetPasswordPolicyRequest(),
            metadata=[("x-request-id", "bad id with spaces")],
        )
        await call
        replaced = dict(await call.initial_metadata())["x-request-id"]
    assert len(generated) == 32
    assert replaced != "bad id with spaces"
    assert len(replaced) == 32


async def test_drain_lets_in_flight_calls_finish_and_reports_not_serving(
    misbehaving: tuple[GraphgateServer, MisbehavingAuth],
) -> None:
    server, servicer = misbehaving
    servicer.stall = 0.6
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        in_flight = asyncio.ensure_future(
            stub.GetPasswordPolicy(auth_pb2.GetPasswordPolicyRequest())
        )
        await asyncio.sleep(0.1)
        drain = asyncio.ensure_future(server.drain(pause=0.3, grace=2.0))
        await asyncio.sleep(0.1)
        status = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
        reply = await in_flight
        await drain
    assert isinstance(reply, auth_pb2.GetPasswordPolicyResponse)


async def test_drain_cancels_calls_that_outlive_the_grace(
    misbehaving: tuple[GraphgateServer, MisbehavingAuth],
) -> None:
    server, servicer = misbehaving
    servicer.stall = 30
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        in_flight = asyncio.ensure_future(
            stub.GetPasswordPolicy(auth_pb2.GetPasswordPolicyRequest())
        )
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.drain(pause=0, grace=0.3)
        with pytest.raises(grpc.RpcError) as caught:
            await in_flight
    assert loop.time() - started < 5
    assert status_of(caught.value) in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
