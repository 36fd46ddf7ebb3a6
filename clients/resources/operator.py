"""``client.operator``: account state and security events (OperatorService).

Authenticate with the operator API key as ``api_key`` (``OPERATOR_API_KEY``,
or ``<data dir>/secrets/operator-api-key`` on a development install).
"""

from __future__ import annotations

from graphgate.clients.contract import rpc
from graphgate.clients.models import SecurityEvent, User
from graphgate.clients.transport import AsyncTransport, Op, Transport
from graphgate.v1 import operator_pb2


def _user(reply: object) -> User:
    return User.from_proto(reply.user)  # type: ignore[attr-defined]


def _deactivate(email: str) -> Op[User]:
    return Op(
        rpc("OperatorService", "DeactivateUser"),
        operator_pb2.DeactivateUserRequest(email=email),
        _user,
    )


def _activate(email: str) -> Op[User]:
    return Op(
        rpc("OperatorService", "ActivateUser"), operator_pb2.ActivateUserRequest(email=email), _user
    )


def _set_tier(email: str, tier: str) -> Op[User]:
    return Op(
        rpc("OperatorService", "SetUserTier"),
        operator_pb2.SetUserTierRequest(email=email, tier=tier),
        _user,
    )


def _unblock(ip_address: str) -> Op[None]:
    return Op(
        rpc("OperatorService", "UnblockAddress"),
        operator_pb2.UnblockAddressRequest(ip_address=ip_address),
        lambda _: None,
    )


def _events(limit: int, event_type: str) -> Op[list[SecurityEvent]]:
    return Op(
        rpc("OperatorService", "ListSecurityEvents"),
        operator_pb2.ListSecurityEventsRequest(limit=limit, event_type=event_type),
        lambda r: [SecurityEvent(e.event_type, e.risk_level, e.json) for e in r.events],
    )


class Operator:
    """Operator calls (the client's ``api_key`` must be the operator key)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def deactivate_user(self, email: str) -> User:
        """End an account's sessions and API keys at once; it cannot sign in."""
        return self._t.run(_deactivate(email))

    def activate_user(self, email: str) -> User:
        """Let a deactivated account sign in again (old sessions stay ended)."""
        return self._t.run(_activate(email))

    def set_user_tier(self, email: str, tier: str) -> User:
        """Change an account's tier (``free``, ``pro``, ``enterprise``) and limits."""
        return self._t.run(_set_tier(email, tier))

    def unblock_address(self, ip_address: str) -> None:
        """Lift a brute-force block on a client address."""
        self._t.run(_unblock(ip_address))

    def security_events(self, *, limit: int = 100, event_type: str = "") -> list[SecurityEvent]:
        """The newest audit events the server recorded."""
        return self._t.run(_events(limit, event_type))


class AsyncOperator:
    """Operator calls (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def deactivate_user(self, email: str) -> User:
        """End an account's sessions and API keys at once; it cannot sign in."""
        return await self._t.run(_deactivate(email))

    async def activate_user(self, email: str) -> User:
        """Let a deactivated account sign in again (old sessions stay ended)."""
        return await self._t.run(_activate(email))

    async def set_user_tier(self, email: str, tier: str) -> User:
        """Change an account's tier (``free``, ``pro``, ``enterprise``) and limits."""
        return await self._t.run(_set_tier(email, tier))

    async def unblock_address(self, ip_address: str) -> None:
        """Lift a brute-force block on a client address."""
        await self._t.run(_unblock(ip_address))

    async def security_events(
        self, *, limit: int = 100, event_type: str = ""
    ) -> list[SecurityEvent]:
        """The newest audit events the server recorded."""
        return await self._t.run(_events(limit, event_type))
