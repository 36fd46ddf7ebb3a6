"""Helpers for tests that talk to a real server: accounts, metadata, audit events."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio
from grpc_status import rpc_status

from graphgate.server.audit import AuditLog
from graphgate.v1 import auth_pb2, auth_pb2_grpc

CHROME_LINUX = {
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.91 Safari/537.36",
    "sec-ch-ua": '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    "sec-ch-ua-platform": '"Linux"',
    "sec-ch-ua-mobile": "?0",
}


def strong_password() -> str:
    """A password that meets the policy (random, so never a common one)."""
    return "Gg7!" + secrets.token_urlsafe(12) + "zQ9#"


def new_email() -> str:
    """A fresh, valid email address."""
    return f"user-{secrets.token_hex(6)}@example.com"


@dataclass
class Account:
    """A registered user and its first session."""

    email: str
    password: str
    user_id: str
    token: str


async def register(
    channel: aio.Channel, *, hints: dict[str, str] | None = None, name: str = "Test User"
) -> Account:
    """Register a new account through the real API."""
    email, password = new_email(), strong_password()
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    reply = await stub.Register(
        auth_pb2.RegisterRequest(email=email, password=password, name=name),
        metadata=list((hints or {}).items()),
    )
    return Account(email, password, reply.user.user_id, reply.session.access_token)


def bearer(token: str, hints: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Call metadata carrying a bearer token (and browser hints)."""
    return [("authorization", f"Bearer {token}"), *(hints or {}).items()]


def code_of(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call."""
    code = error.code()  # type: ignore[attr-defined]
    assert isinstance(code, grpc.StatusCode)
    return code


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call ("" when absent)."""
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


async def wait_for_event(
    audit: AuditLog, event_type: str, *, within: float = 2.0, **match: Any
) -> dict[str, Any]:
    """The newest audit event of ``event_type`` whose fields match, waiting briefly
    (the audit link writes after the client already has its answer)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for event in audit.recent(1000):
            if event["event_type"] == event_type and all(
                event.get(k) == v for k, v in match.items()
            ):
                return event
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no audit event {event_type} matching {match}")
        await asyncio.sleep(0.02)
