"""Users in PostgreSQL: accounts, password hashes, tiers, activation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from graphgate.server.errors import AlreadyExists, NotFound


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One account as stored."""

    user_id: str
    email: str
    name: str
    password_hash: str
    tier: str
    active: bool
    #: Tokens issued before this instant are refused.
    tokens_valid_after: datetime
    created_at: datetime


def _record(row: asyncpg.Record) -> UserRecord:
    return UserRecord(
        user_id=str(row["user_id"]),
        email=row["email"],
        name=row["name"],
        password_hash=row["password_hash"],
        tier=row["tier"],
        active=row["active"],
        tokens_valid_after=row["tokens_valid_after"],
        created_at=row["created_at"],
    )


class UserStore:
    """All SQL about users."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, email: str, name: str, password_hash: str) -> UserRecord:
        """Insert an account; raises :class:`AlreadyExists` for a taken email."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO users (user_id, email, name, password_hash) "
                "VALUES ($1, $2, $3, $4) RETURNING user_id, email, name, password_hash, tier, "
                "active, tokens_valid_after, created_at",
                uuid.uuid4(),
                email,
                name,
                password_hash,
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyExists(
                public_message="an account with this email already exists",
                reason="EMAIL_TAKEN",
            ) from exc
        assert row is not None  # noqa: S101 - INSERT … RETURNING returns the row
        return _record(row)

    async def by_email(self, email: str) -> UserRecord | None:
        """The account with ``email`` (case-insensitive), or None."""
        row = await self._pool.fetchrow(
            "SELECT user_id, email, name, password_hash, tier, active, tokens_valid_after, "
            "created_at FROM users WHERE lower(email) = lower($1)",
            email,
        )
        return _record(row) if row else None

    async def by_id(self, user_id: str) -> UserRecord | None:
        """The account with ``user_id``, or None."""
        row = await self._pool.fetchrow(
            "SELECT user_id, email, name, password_hash, tier, active, tokens_valid_after, "
            "created_at FROM users WHERE user_id = $1",
            uuid.UUID(user_id),
        )
        return _record(row) if row else None

    async def set_password(
        self, user_id: str, password_hash: str, *, tokens_valid_after: datetime
    ) -> None:
        """Store a new hash; tokens issued before ``tokens_valid_after`` end."""
        await self._pool.execute(
            "UPDATE users SET password_hash = $2, tokens_valid_after = $3, updated_at = now() "
            "WHERE user_id = $1",
            uuid.UUID(user_id),
            password_hash,
            tokens_valid_after,
        )

    async def set_active(
        self, email: str, active: bool, *, tokens_valid_after: datetime
    ) -> UserRecord:
        """(De)activate an account; its earlier tokens end either way."""
        row = await self._pool.fetchrow(
            "UPDATE users SET active = $2, tokens_valid_after = $3, updated_at = now() "
            "WHERE lower(email) = lower($1) RETURNING user_id, email, name, password_hash, "
            "tier, active, tokens_valid_after, created_at",
            email,
            active,
            tokens_valid_after,
        )
        if row is None:
            raise NotFound(public_message="no such user", reason="USER_NOT_FOUND")
        return _record(row)

    async def set_tier(self, email: str, tier: str) -> UserRecord:
        """Change an account's tier (free, pro, enterprise)."""
        row = await self._pool.fetchrow(
            "UPDATE users SET tier = $2, updated_at = now() "
            "WHERE lower(email) = lower($1) RETURNING user_id, email, name, password_hash, "
            "tier, active, tokens_valid_after, created_at",
            email,
            tier,
        )
        if row is None:
            raise NotFound(public_message="no such user", reason="USER_NOT_FOUND")
        return _record(row)
