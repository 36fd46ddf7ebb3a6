"""API keys in PostgreSQL: bcrypt hashes found by a non-secret lookup id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from graphgate.server.errors import NotFound


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """One API key as stored (never the secret itself)."""

    api_key_id: str
    user_id: str
    lookup_id: str
    secret_hash: str
    display_prefix: str
    name: str
    description: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """What authentication needs about a key's owner."""

    email: str
    tier: str
    active: bool


def _record(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        api_key_id=str(row["api_key_id"]),
        user_id=str(row["user_id"]),
        lookup_id=row["lookup_id"],
        secret_hash=row["secret_hash"],
        display_prefix=row["display_prefix"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class ApiKeyStore:
    """All SQL about API keys."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        *,
        user_id: str,
        lookup_id: str,
        secret_hash: str,
        display_prefix: str,
        name: str,
        description: str,
        expires_at: datetime | None,
    ) -> ApiKeyRecord:
        """Insert a key."""
        row = await self._pool.fetchrow(
            "INSERT INTO api_keys AS k (api_key_id, user_id, lookup_id, secret_hash, "
            "display_prefix, name, description, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING k.api_key_id, k.user_id, "
            "k.lookup_id, k.secret_hash, k.display_prefix, k.name, k.description, "
            "k.created_at, k.expires_at, k.last_used_at, k.revoked_at",
            uuid.uuid4(),
            uuid.UUID(user_id),
            lookup_id,
            secret_hash,
            display_prefix,
            name,
            description,
            expires_at,
        )
        assert row is not None  # noqa: S101 - INSERT … RETURNING returns the row
        return _record(row)

    async def list_for_user(self, user_id: str) -> list[ApiKeyRecord]:
        """The user's keys, newest first."""
        rows = await self._pool.fetch(
            "SELECT k.api_key_id, k.user_id, k.lookup_id, k.secret_hash, k.display_prefix, "
            "k.name, k.description, k.created_at, k.expires_at, k.last_used_at, k.revoked_at "
            "FROM api_keys k WHERE k.user_id = $1 "
            "ORDER BY k.created_at DESC",
            uuid.UUID(user_id),
        )
        return [_record(r) for r in rows]

    async def live_lookup_ids(self, user_id: str) -> list[str]:
        """Lookup ids of the user's keys that are not revoked (for deactivation)."""
        rows = await self._pool.fetch(
            "SELECT lookup_id FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL",
            uuid.UUID(user_id),
        )
        return [r["lookup_id"] for r in rows]

    async def by_lookup_id(self, lookup_id: str) -> tuple[ApiKeyRecord, KeyOwner] | None:
        """A key and its owner, by the key's lookup id."""
        row = await self._pool.fetchrow(
            "SELECT k.api_key_id, k.user_id, k.lookup_id, k.secret_hash, k.display_prefix, "
            "k.name, k.description, k.created_at, k.expires_at, k.last_used_at, k.revoked_at, "
            "u.email, u.tier, u.active FROM api_keys k "
            "JOIN users u ON u.user_id = k.user_id WHERE k.lookup_id = $1",
            lookup_id,
        )
        if row is None:
            return None
        return _record(row), KeyOwner(email=row["email"], tier=row["tier"], active=row["active"])

    async def revoke(self, user_id: str, api_key_id: str) -> ApiKeyRecord:
        """Revoke one of the user's keys; another user's key is NOT_FOUND."""
        row = await self._pool.fetchrow(
            "UPDATE api_keys AS k SET revoked_at = coalesce(k.revoked_at, now()) "
            "WHERE k.api_key_id = $1 AND k.user_id = $2 RETURNING k.api_key_id, k.user_id, "
            "k.lookup_id, k.secret_hash, k.display_prefix, k.name, k.description, "
            "k.created_at, k.expires_at, k.last_used_at, k.revoked_at",
            uuid.UUID(api_key_id),
            uuid.UUID(user_id),
        )
        if row is None:
            raise NotFound(public_message="no such API key", reason="API_KEY_NOT_FOUND")
        return _record(row)

    async def touch(self, api_key_id: str, at: datetime) -> None:
        """Record use; callers throttle this to about once a minute per key."""
        await self._pool.execute(
            "UPDATE api_keys SET last_used_at = $2 WHERE api_key_id = $1",
            uuid.UUID(api_key_id),
            at,
        )
