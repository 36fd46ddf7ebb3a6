"""API keys: created from a CSPRNG, shown once, stored as bcrypt (C5).

A key is ``gg_`` and 64 hex characters (256 random bits). Its first 16 hex
characters are a public lookup id stored in clear, so checking a key costs at
most one bcrypt (cost 12); the whole key is hashed. Only signed-in users (not
other API keys) manage keys, so a leaked key cannot mint more keys.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal, PrincipalKind
from graphgate.server.errors import FailedPrecondition, PermissionDenied
from graphgate.server.services.authentication import API_KEY_PREFIX, lookup_id_of
from graphgate.server.services.passwords import PasswordHasher
from graphgate.server.stores.api_keys import ApiKeyRecord, ApiKeyStore
from graphgate.server.stores.gate import GateStore


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key's secret (shown once) and its stored description."""

    secret: str
    record: ApiKeyRecord


class ApiKeyService:
    """Domain logic of ApiKeyService."""

    def __init__(
        self, *, keys: ApiKeyStore, gate: GateStore, hasher: PasswordHasher, audit: AuditLog
    ) -> None:
        self._keys = keys
        self._gate = gate
        self._hasher = hasher
        self._audit = audit

    @staticmethod
    def _owner(principal: Principal) -> str:
        if principal.kind is not PrincipalKind.USER:
            raise PermissionDenied(
                public_message="API keys are managed from a signed-in session",
                reason="SESSION_REQUIRED",
            )
        return principal.user_id

    async def create(
        self, principal: Principal, *, name: str, description: str, expires_at: datetime | None
    ) -> NewKey:
        """Make a key; the returned secret is not stored and cannot be shown again."""
        user_id = self._owner(principal)
        secret = API_KEY_PREFIX + secrets.token_hex(32)
        record = await self._keys.create(
            user_id=user_id,
            lookup_id=lookup_id_of(secret),
            secret_hash=await self._hasher.hash(secret),
            display_prefix=secret[: len(API_KEY_PREFIX) + 8],
            name=name,
            description=description,
            expires_at=expires_at,
        )
        self._audit.emit(
            AuditEventType.API_KEY_CREATED,
            risk=RiskLevel.LOW,
            outcome="ok",
            subject_api_key_id=record.api_key_id,
        )
        return NewKey(secret=secret, record=record)

    async def list_keys(self, principal: Principal) -> list[ApiKeyRecord]:
        """The caller's keys, newest first."""
        return await self._keys.list_for_user(self._owner(principal))

    async def revoke(self, principal: Principal, api_key_id: str) -> ApiKeyRecord:
        """End a key at once on every replica."""
        record = await self._keys.revoke(self._owner(principal), api_key_id)
        await self._gate.revoke_keys([record.lookup_id])
        self._audit.emit(
            AuditEventType.API_KEY_REVOKED,
            risk=RiskLevel.LOW,
            outcome="ok",
            subject_api_key_id=record.api_key_id,
        )
        return record

    async def rotate(self, principal: Principal, api_key_id: str) -> NewKey:
        """Replace a key: the old secret ends now, the new one has its name."""
        current = {k.api_key_id: k for k in await self.list_keys(principal)}.get(api_key_id)
        if current is not None and current.revoked_at is not None:
            raise FailedPrecondition(
                public_message="a revoked key cannot be rotated", reason="API_KEY_REVOKED"
            )
        old = await self.revoke(principal, api_key_id)
        return await self.create(
            principal, name=old.name, description=old.description, expires_at=old.expires_at
        )
