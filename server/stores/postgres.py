"""PostgreSQL: the connection pool and the ordered schema migrations.

Migrations are the numbered ``migrations/NNNN_name.sql`` files, applied in
order, each in its own transaction, under an advisory lock so that several
replicas starting at once apply each file exactly once.
"""

from __future__ import annotations

import logging
import ssl as ssl_module
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from graphgate.server.errors import StoreUnavailable

#: A connection, pooled or not.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

_log = logging.getLogger("graphgate.stores.postgres")
#: Arbitrary constant: the advisory lock id that serialises migrations.
_MIGRATION_LOCK = 0x67726170


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema migration file."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with graphgate, in order."""
    folder = resources.files("graphgate.server.stores") / "migrations"
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, _, rest = entry.name.partition("_")
        found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def apply_migrations(conn: Connection) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns the versions applied."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            _log.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def migrate(dsn: str, *, ssl: ssl_module.SSLContext | None = None) -> list[int]:
    """Apply the pending migrations over a connection of their own; returns the versions.

    Not a pooled connection: pooled ones are not reset (:func:`connect_pool`),
    and the migration lock must end with this connection whatever happens.
    """
    try:
        conn = await asyncpg.connect(dsn, ssl=ssl)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(detail=f"PostgreSQL: {exc}") from exc
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing beyond asyncpg's own rollback of an open transaction.

    The default reset costs a round trip per checkout (``RESET ALL``,
    ``UNLISTEN *``, ``CLOSE ALL``, advisory unlock). The stores never leave
    such session state on a pooled connection: no ``SET`` outside a
    transaction, no ``LISTEN``, no cursors, and advisory locks only in
    :func:`migrate`, on a connection of its own.
    """


async def connect_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, ssl: ssl_module.SSLContext | None = None
) -> asyncpg.Pool:
    """Open a pool (TLS with ``ssl``); raises :class:`StoreUnavailable` with a one-line reason."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, ssl=ssl, reset=_keep_session
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(detail=f"PostgreSQL: {exc}") from exc
    assert pool is not None  # noqa: S101 - create_pool returns None only without awaiting
    return pool
