"""The call path under both clients: credentials, deadlines, retries, errors.

Every call gets an ``x-request-id`` (kept across its retries, and on the
exception), the client's default deadline unless told otherwise, the
caller's credentials (a session renewed single-flight first, if due), retries
only where :mod:`graphgate.clients.retry` says they are safe, and its error
mapped once by :func:`graphgate.clients.errors.from_rpc_error`.

:class:`Transport` serves the sync :class:`~graphgate.clients.Client` (a
``grpc.Channel``, a ``threading.Lock``); :class:`AsyncTransport` serves the
:class:`~graphgate.clients.AsyncClient` (a ``grpc.aio.Channel`` opened on first
use inside the running loop, an ``asyncio.Lock``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as _metadata
from typing import Any, Generic, TypeVar

import grpc
from grpc import aio

from graphgate.clients.auth import (
    STALE_TOKEN_REASONS,
    ApiKeyCredentials,
    Metadata,
    SessionCredentials,
)
from graphgate.clients.contract import Rpc, rpc, stub_classes
from graphgate.clients.errors import AuthenticationError, GraphgateError, from_rpc_error
from graphgate.clients.retry import RetryPolicy
from graphgate.clients.target import Target
from graphgate.v1 import auth_pb2

T = TypeVar("T")
Credentials = ApiKeyCredentials | SessionCredentials

_LOGIN = rpc("AuthService", "Login")
_REFRESH = rpc("AuthService", "Refresh")
_MAX_RECEIVE_BYTES = 64 * 1024 * 1024


def _user_agent() -> str:
    try:
        version = _metadata.version("graphgate")
    except _metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        version = "0"
    return f"graphgate-python/{version}"


def channel_options() -> list[tuple[str, Any]]:
    """Options of every SDK channel."""
    return [
        ("grpc.primary_user_agent", _user_agent()),
        ("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES),
    ]


def new_request_id() -> str:
    """A fresh request id (the server accepts ``[A-Za-z0-9._:-]{8,128}``)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """One unary call: the RPC, its request, and how to read its response."""

    rpc: Rpc
    request: Any
    convert: Callable[[Any], T]


def _session_expired() -> AuthenticationError:
    return AuthenticationError(
        "the session has expired and no password is known to sign in again",
        code=grpc.StatusCode.UNAUTHENTICATED,
        reason="SESSION_EXPIRED",
    )


def _bearer_of(headers: Metadata) -> str | None:
    for key, value in headers:
        if key == "authorization":
            return value.removeprefix("Bearer ")
    return None


class _Common:
    def __init__(
        self,
        target: Target,
        *,
        credentials: Credentials | None,
        retry: RetryPolicy,
        timeout: float | None,
    ) -> None:
        self.target = target
        self.credentials = credentials
        self.retry = retry
        self.timeout = timeout

    def _deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def _stale(self, error: GraphgateError, used: Metadata) -> SessionCredentials | None:
        """The session to sign in again after ``error``, if that may help."""
        creds = self.credentials
        if (
            isinstance(error, AuthenticationError)
            and error.reason in STALE_TOKEN_REASONS
            and isinstance(creds, SessionCredentials)
            and creds.can_sign_in
        ):
            return creds
        return None


class Transport(_Common):
    """Sync call path over one ``grpc.Channel``; safe to share between threads."""

    def __init__(
        self,
        target: Target,
        *,
        credentials: Credentials | None,
        retry: RetryPolicy,
        timeout: float | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(target, credentials=credentials, retry=retry, timeout=timeout)
        options = channel_options()
        self._channel = (
            grpc.secure_channel(target.address, target.credentials, options=options)
            if target.credentials is not None
            else grpc.insecure_channel(target.address, options=options)
        )
        self._stubs = {name: cls(self._channel) for name, cls in stub_classes().items()}
        self._session_lock = threading.Lock()
        self._sleep = sleep

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def run(self, op: Op[T], *, timeout: float | None = None) -> T:
        """Make ``op``'s call and convert its response."""
        return op.convert(self.unary(op.rpc, op.request, timeout=timeout))

    def unary(
        self,
        method: Rpc,
        request: Any,
        *,
        timeout: float | None = None,
        authenticated: bool = True,
        headers: Metadata | None = None,
    ) -> Any:
        """One unary call with credentials, deadline, safe retries and typed errors.

        ``authenticated=False`` sends no credentials but ``headers``.
        """
        callable_ = getattr(self._stubs[method.service], method.name)
        request_id = new_request_id()
        budget = self.retry.budget()
        signed_in_again = False
        while True:
            used = self._headers() if authenticated else list(headers or [])
            try:
                return callable_(
                    request,
                    timeout=self._deadline(timeout),
                    metadata=[("x-request-id", request_id), *used],
                )
            except grpc.RpcError as exc:
                error, cause = from_rpc_error(exc, request_id=request_id), exc
            stale = self._stale(error, used) if authenticated and not signed_in_again else None
            if stale is not None:
                # Refused before any handler ran, so even a write is safe to resend.
                with self._session_lock:
                    stale.invalidate(_bearer_of(used))
                signed_in_again = True
                continue
            delay = budget.next_delay(error, writes=method.writes)
            if delay is None:
                raise error from cause
            self._sleep(delay)

    def start_stream(
        self, method: Rpc, request: Any, request_id: str, *, timeout: float | None = None
    ) -> Any:
        """Start a server-streaming call (no retries: streams run writes' policy)."""
        callable_ = getattr(self._stubs[method.service], method.name)
        return callable_(
            request,
            timeout=timeout,
            metadata=[("x-request-id", request_id), *self._headers()],
        )

    def _headers(self) -> Metadata:
        creds = self.credentials
        if isinstance(creds, SessionCredentials):
            if creds.due():
                self._renew(creds)
            return creds.headers()
        return creds.headers() if creds is not None else []

    def _renew(self, creds: SessionCredentials) -> None:
        with self._session_lock:
            if not creds.due():
                return  # another thread renewed it while we waited for the lock
            if creds.alive():
                try:
                    reply = self.unary(
                        _REFRESH,
                        auth_pb2.RefreshRequest(),
                        authenticated=False,
                        headers=creds.headers(),
                    )
                except AuthenticationError:
                    pass  # the token is no good any more: sign in again below
                except GraphgateError:
                    creds.postpone()  # rate-limited or unavailable: the token still works
                    return
                else:
                    creds.accept(reply.session)
                    return
            if not creds.can_sign_in:
                raise _session_expired()
            login = self.unary(
                _LOGIN,
                auth_pb2.LoginRequest(email=creds.email or "", password=creds.password or ""),
                authenticated=False,
            )
            creds.accept(login.session)


class AsyncTransport(_Common):
    """Async call path over one ``grpc.aio.Channel``, opened in the running loop."""

    def __init__(
        self,
        target: Target,
        *,
        credentials: Credentials | None,
        retry: RetryPolicy,
        timeout: float | None,
    ) -> None:
        super().__init__(target, credentials=credentials, retry=retry, timeout=timeout)
        self._channel: aio.Channel | None = None
        self._stubs: dict[str, Any] = {}
        self._session_lock = asyncio.Lock()

    def _stub(self, service: str) -> Any:
        if self._channel is None:
            # Opened lazily: a grpc.aio channel binds to the loop running when it is made.
            options = channel_options()
            self._channel = (
                aio.secure_channel(self.target.address, self.target.credentials, options=options)
                if self.target.credentials is not None
                else aio.insecure_channel(self.target.address, options=options)
            )
            self._stubs = {name: cls(self._channel) for name, cls in stub_classes().items()}
        return self._stubs[service]

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    # A gRPC deadline travels to the server, which asyncio.timeout cannot do.
    async def run(self, op: Op[T], *, timeout: float | None = None) -> T:  # noqa: ASYNC109
        """Make ``op``'s call and convert its response."""
        return op.convert(await self.unary(op.rpc, op.request, timeout=timeout))

    async def unary(
        self,
        method: Rpc,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
        authenticated: bool = True,
        headers: Metadata | None = None,
    ) -> Any:
        """Like :meth:`Transport.unary`, awaited."""
        callable_ = getattr(self._stub(method.service), method.name)
        request_id = new_request_id()
        budget = self.retry.budget()
        signed_in_again = False
        while True:
            used = await self._headers() if authenticated else list(headers or [])
            try:
                return await callable_(
                    request,
                    timeout=self._deadline(timeout),
                    metadata=[("x-request-id", request_id), *used],
                )
            except grpc.RpcError as exc:
                error, cause = from_rpc_error(exc, request_id=request_id), exc
            stale = self._stale(error, used) if authenticated and not signed_in_again else None
            if stale is not None:
                async with self._session_lock:
                    stale.invalidate(_bearer_of(used))
                signed_in_again = True
                continue
            delay = budget.next_delay(error, writes=method.writes)
            if delay is None:
                raise error from cause
            await asyncio.sleep(delay)

    async def start_stream(
        self,
        method: Rpc,
        request: Any,
        request_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline
    ) -> aio.UnaryStreamCall[Any, Any]:
        """Start a server-streaming call (no retries)."""
        callable_ = getattr(self._stub(method.service), method.name)
        call: aio.UnaryStreamCall[Any, Any] = callable_(
            request,
            timeout=timeout,
            metadata=[("x-request-id", request_id), *await self._headers()],
        )
        return call

    async def _headers(self) -> Metadata:
        creds = self.credentials
        if isinstance(creds, SessionCredentials):
            if creds.due():
                await self._renew(creds)
            return creds.headers()
        return creds.headers() if creds is not None else []

    async def _renew(self, creds: SessionCredentials) -> None:
        async with self._session_lock:
            if not creds.due():
                return  # another task renewed it while we waited for the lock
            if creds.alive():
                try:
                    reply = await self.unary(
                        _REFRESH,
                        auth_pb2.RefreshRequest(),
                        authenticated=False,
                        headers=creds.headers(),
                    )
                except AuthenticationError:
                    pass
                except GraphgateError:
                    creds.postpone()
                    return
                else:
                    creds.accept(reply.session)
                    return
            if not creds.can_sign_in:
                raise _session_expired()
            login = await self.unary(
                _LOGIN,
                auth_pb2.LoginRequest(email=creds.email or "", password=creds.password or ""),
                authenticated=False,
            )
            creds.accept(login.session)
