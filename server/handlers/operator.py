"""OperatorService servicer."""

from __future__ import annotations

import json
from typing import Any

from graphgate.server.audit import AuditLog
from graphgate.server.handlers import convert
from graphgate.server.services.accounts import AccountService
from graphgate.v1 import operator_pb2


class OperatorServicer:
    """Serves graphgate.v1.OperatorService."""

    def __init__(self, accounts: AccountService, audit: AuditLog) -> None:
        self._accounts = accounts
        self._audit = audit

    async def DeactivateUser(
        self, request: operator_pb2.DeactivateUserRequest, context: Any
    ) -> operator_pb2.DeactivateUserResponse:
        user = await self._accounts.set_active(request.email, False)
        return operator_pb2.DeactivateUserResponse(user=convert.user(user))

    async def ActivateUser(
        self, request: operator_pb2.ActivateUserRequest, context: Any
    ) -> operator_pb2.ActivateUserResponse:
        user = await self._accounts.set_active(request.email, True)
        return operator_pb2.ActivateUserResponse(user=convert.user(user))

    async def SetUserTier(
        self, request: operator_pb2.SetUserTierRequest, context: Any
    ) -> operator_pb2.SetUserTierResponse:
        user = await self._accounts.set_tier(request.email, request.tier)
        return operator_pb2.SetUserTierResponse(user=convert.user(user))

    async def UnblockAddress(
        self, request: operator_pb2.UnblockAddressRequest, context: Any
    ) -> operator_pb2.UnblockAddressResponse:
        await self._accounts.unblock_address(request.ip_address)
        return operator_pb2.UnblockAddressResponse()

    async def ListSecurityEvents(
        self, request: operator_pb2.ListSecurityEventsRequest, context: Any
    ) -> operator_pb2.ListSecurityEventsResponse:
        events = self._audit.recent(1000)
        if request.event_type:
            events = [e for e in events if e.get("event_type") == request.event_type]
        return operator_pb2.ListSecurityEventsResponse(
            events=[
                operator_pb2.SecurityEvent(
                    event_type=str(e.get("event_type", "")),
                    risk_level=str(e.get("risk_level", "")),
                    json=json.dumps(e, default=str, separators=(",", ":")),
                )
                for e in events[: request.limit or 100]
            ]
        )
