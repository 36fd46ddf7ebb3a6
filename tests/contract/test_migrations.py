"""Schema migrations applied to an empty PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from graphgate.server.settings import Settings
from graphgate.server.stores.postgres import apply_migrations, migrations


@pytest.fixture
async def empty_database(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    assert settings.database_url is not None
    name = f"migration_test_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(settings.database_url, database=name)
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_migrations_apply_to_an_empty_database_once(
    empty_database: asyncpg.Connection,
) -> None:
    applied = await apply_migrations(empty_database)
    assert applied == [m.version for m in migrations()]
    tables = {
        r["tablename"]
        for r in await empty_database.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'"
        )
    }
    assert {
        "users",
        "api_keys",
        "graphs",
        "graph_members",
        "uploads",
        "schema_migrations",
    } <= tables
    assert await apply_migrations(empty_database) == []


async def test_emails_are_unique_whatever_their_case(empty_database: asyncpg.Connection) -> None:
    await apply_migrations(empty_database)
    insert = "INSERT INTO users (user_id, email, name, password_hash) VALUES ($1, $2, 'n', 'h')"
    await empty_database.execute(insert, uuid.uuid4(), "Ada@Example.com")
    with pytest.raises(asyncpg.UniqueViolationError):
        await empty_database.execute(insert, uuid.uuid4(), "ada@example.COM")
