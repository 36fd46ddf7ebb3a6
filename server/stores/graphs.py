"""Graphs, subgraphs and memberships in PostgreSQL.

Membership is kept for top-level graphs only: a subgraph's access is its
parent's, resolved in the same query that finds the subgraph, so no decision
is ever cached across a membership change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from graphgate.server.errors import AlreadyExists, FailedPrecondition, NotFound

ROLES = ("admin", "member", "viewer")

_NOT_FOUND = "graph not found"


@dataclass(frozen=True, slots=True)
class GraphRecord:
    """A graph as one caller sees it."""

    graph_id: str
    name: str
    description: str
    parent_graph_id: str | None
    role: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One membership."""

    user_id: str
    email: str
    role: str


def _graph(row: asyncpg.Record) -> GraphRecord:
    parent = row["parent_graph_id"]
    return GraphRecord(
        graph_id=str(row["graph_id"]),
        name=row["name"],
        description=row["description"],
        parent_graph_id=str(parent) if parent else None,
        role=row["role"],
        created_at=row["created_at"],
    )


def _graph_not_found() -> NotFound:
    return NotFound(public_message=_NOT_FOUND, reason="GRAPH_NOT_FOUND")


class GraphStore:
    """All SQL about graphs and members.

    Members belong to a top-level graph: given a subgraph, the member
    statements resolve its parent in SQL (``coalesce(parent_graph_id, graph_id)``).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def role_of(self, graph_id: str, user_id: str) -> str | None:
        """The user's role on a graph or subgraph (the parent's for a subgraph).

        None both for an unknown graph and for a graph the user is not a
        member of: callers answer both the same way (C9).
        """
        role: str | None = await self._pool.fetchval(
            "SELECT m.role FROM graphs g JOIN graph_members m "
            "ON m.graph_id = coalesce(g.parent_graph_id, g.graph_id) AND m.user_id = $2 "
            "WHERE g.graph_id = $1",
            uuid.UUID(graph_id),
            uuid.UUID(user_id),
        )
        return role

    async def create(
        self,
        *,
        graph_id: str,
        name: str,
        description: str,
        created_by: str,
        parent_graph_id: str | None = None,
    ) -> GraphRecord:
        """Insert a graph; the creator becomes admin of a top-level graph."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO graphs (graph_id, parent_graph_id, name, description, created_by) "
                "VALUES ($1, $2, $3, $4, $5) "
                "RETURNING graph_id, parent_graph_id, name, description, created_at, "
                "'admin'::text AS role",
                uuid.UUID(graph_id),
                uuid.UUID(parent_graph_id) if parent_graph_id else None,
                name,
                description,
                uuid.UUID(created_by),
            )
            if parent_graph_id is None:
                await conn.execute(
                    "INSERT INTO graph_members (graph_id, user_id, role) VALUES ($1, $2, 'admin')",
                    uuid.UUID(graph_id),
                    uuid.UUID(created_by),
                )
        assert row is not None  # noqa: S101 - INSERT … RETURNING returns the row
        return _graph(row)

    async def get(self, graph_id: str, user_id: str) -> GraphRecord:
        """One graph with the caller's role; NOT_FOUND if not a member."""
        row = await self._pool.fetchrow(
            "SELECT g.graph_id, g.parent_graph_id, g.name, g.description, g.created_at, m.role "
            "FROM graphs g JOIN graph_members m "
            "ON m.graph_id = coalesce(g.parent_graph_id, g.graph_id) AND m.user_id = $2 "
            "WHERE g.graph_id = $1",
            uuid.UUID(graph_id),
            uuid.UUID(user_id),
        )
        if row is None:
            raise _graph_not_found()
        return _graph(row)

    async def list_for_user(
        self, user_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[GraphRecord]:
        """Top-level graphs the user belongs to, oldest first, after a cursor."""
        after_time, after_id = after if after else (None, None)
        rows = await self._pool.fetch(
            "SELECT g.graph_id, g.parent_graph_id, g.name, g.description, g.created_at, m.role "
            "FROM graph_members m JOIN graphs g ON g.graph_id = m.graph_id "
            "WHERE m.user_id = $1 AND g.parent_graph_id IS NULL "
            "AND ($2::timestamptz IS NULL OR (g.created_at, g.graph_id) > ($2, $3::uuid)) "
            "ORDER BY g.created_at, g.graph_id LIMIT $4",
            uuid.UUID(user_id),
            after_time,
            uuid.UUID(after_id) if after_id else None,
            limit,
        )
        return [_graph(r) for r in rows]

    async def subgraphs(self, parent_graph_id: str, user_id: str) -> list[GraphRecord]:
        """A graph's subgraphs with the caller's (the parent's) role."""
        rows = await self._pool.fetch(
            "SELECT g.graph_id, g.parent_graph_id, g.name, g.description, g.created_at, m.role "
            "FROM graphs g JOIN graph_members m ON m.graph_id = g.parent_graph_id "
            "AND m.user_id = $2 WHERE g.parent_graph_id = $1 ORDER BY g.created_at, g.graph_id",
            uuid.UUID(parent_graph_id),
            uuid.UUID(user_id),
        )
        return [_graph(r) for r in rows]

    async def parent_of(self, graph_id: str) -> str | None:
        """The parent's id of a subgraph, None for a top-level graph."""
        parent = await self._pool.fetchval(
            "SELECT parent_graph_id FROM graphs WHERE graph_id = $1", uuid.UUID(graph_id)
        )
        return str(parent) if parent else None

    async def delete(self, graph_id: str) -> list[str]:
        """Delete a graph and its subgraphs; returns every deleted id."""
        rows = await self._pool.fetch(
            "DELETE FROM graphs WHERE graph_id = $1 OR parent_graph_id = $1 RETURNING graph_id",
            uuid.UUID(graph_id),
        )
        return [str(r["graph_id"]) for r in rows]

    async def members(self, graph_id: str) -> list[MemberRecord]:
        """Members of a graph (a subgraph's are its parent's), admins first."""
        rows = await self._pool.fetch(
            "SELECT m.user_id, u.email, m.role FROM graph_members m "
            "JOIN users u ON u.user_id = m.user_id WHERE m.graph_id = "
            "(SELECT coalesce(parent_graph_id, graph_id) FROM graphs WHERE graph_id = $1) "
            "ORDER BY array_position(ARRAY['admin','member','viewer'], m.role), u.email",
            uuid.UUID(graph_id),
        )
        return [MemberRecord(str(r["user_id"]), r["email"], r["role"]) for r in rows]

    async def add_member(self, graph_id: str, email: str, role: str) -> MemberRecord:
        """Give an existing user a role on a graph (a subgraph's parent); ALREADY_EXISTS
        if they have one."""
        user = await self._pool.fetchrow(
            "SELECT user_id, email FROM users WHERE lower(email) = lower($1) AND active", email
        )
        if user is None:
            raise NotFound(public_message="no such user", reason="USER_NOT_FOUND")
        try:
            status = await self._pool.execute(
                "INSERT INTO graph_members (graph_id, user_id, role) "
                "SELECT coalesce(parent_graph_id, graph_id), $2, $3 FROM graphs "
                "WHERE graph_id = $1",
                uuid.UUID(graph_id),
                user["user_id"],
                role,
            )
        except asyncpg.UniqueViolationError as exc:
            raise AlreadyExists(
                public_message="the user is already a member", reason="ALREADY_MEMBER"
            ) from exc
        if status == "INSERT 0 0":  # the graph was deleted meanwhile
            raise _graph_not_found()
        return MemberRecord(str(user["user_id"]), user["email"], role)

    async def change_member(self, graph_id: str, user_id: str, role: str | None) -> MemberRecord:
        """Set a member's role on a graph (a subgraph's parent; None removes them);
        the last admin stays."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Locking every membership row of the graph serialises concurrent
            # changes, so two admins cannot demote each other at once.
            rows = await conn.fetch(
                "SELECT m.graph_id, m.user_id, u.email, m.role FROM graph_members m "
                "JOIN users u ON u.user_id = m.user_id WHERE m.graph_id = "
                "(SELECT coalesce(parent_graph_id, graph_id) FROM graphs WHERE graph_id = $1) "
                "FOR UPDATE OF m",
                uuid.UUID(graph_id),
            )
            current = next((r for r in rows if str(r["user_id"]) == user_id), None)
            if current is None:
                raise NotFound(public_message="no such member", reason="MEMBER_NOT_FOUND")
            admins = sum(1 for r in rows if r["role"] == "admin")
            if current["role"] == "admin" and role != "admin" and admins == 1:
                raise FailedPrecondition(
                    public_message="a graph must keep at least one admin", reason="LAST_ADMIN"
                )
            root = current["graph_id"]
            if role is None:
                await conn.execute(
                    "DELETE FROM graph_members WHERE graph_id = $1 AND user_id = $2",
                    root,
                    uuid.UUID(user_id),
                )
            else:
                await conn.execute(
                    "UPDATE graph_members SET role = $3 WHERE graph_id = $1 AND user_id = $2",
                    root,
                    uuid.UUID(user_id),
                    role,
                )
        return MemberRecord(user_id, current["email"], role or current["role"])
