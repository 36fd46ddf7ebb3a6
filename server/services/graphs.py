"""Graphs: tenancy, members, schema and Cypher through the firewall (C9, C15).

Every statement is analysed by our own parser and allowed per role before it
reaches a graph worker; viewers' statements also run read-only there; every
query runs under a timeout and row limit the query cannot change (the
smallest of the request's, the role's ceiling and the call's deadline).
Each graph is its own LadybugDB database in a worker process, named by a
generated id only.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal
from graphgate.server.engine.pool import GraphEngine
from graphgate.server.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    QueryRefused,
)
from graphgate.server.observability.engine import EngineObserver
from graphgate.server.roles import role_name
from graphgate.server.services.cypher import QueryClass, Role, analyze, authorize
from graphgate.server.services.pagination import decode_page_token, page_of
from graphgate.server.stores.graphs import GraphRecord, GraphStore, MemberRecord
from graphgate.v1 import common_pb2, graph_pb2

QUERY_CLASS_VALUES = {
    QueryClass.READ: graph_pb2.QUERY_CLASS_READ,
    QueryClass.WRITE: graph_pb2.QUERY_CLASS_WRITE,
    QueryClass.MIXED: graph_pb2.QUERY_CLASS_MIXED,
    QueryClass.BULK: graph_pb2.QUERY_CLASS_BULK,
    QueryClass.ADMIN: graph_pb2.QUERY_CLASS_ADMIN,
    QueryClass.SCHEMA_DDL: graph_pb2.QUERY_CLASS_SCHEMA_DDL,
}
_ROLES = {"admin": Role.ADMIN, "member": Role.MEMBER, "viewer": Role.VIEWER}


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Server-set limits no query can change."""

    default_timeout_seconds: float = 30.0
    #: The longest a query may run, by role.
    timeout_ceiling_seconds: Mapping[str, float] = field(
        default_factory=lambda: {"viewer": 60.0, "member": 120.0, "admin": 300.0}
    )
    default_row_limit: int = 10_000
    max_row_limit: int = 100_000
    max_result_bytes: int = 32 * 2**20
    stream_row_limit: int = 100_000_000
    stream_batch_rows: int = 1000


def _read_only(role: str, query_class: QueryClass) -> bool:
    # Viewers always run read-only (a second wall behind the firewall); reads
    # of members and admins too, so they run in parallel instead of queueing
    # behind the graph's single writer.
    return role == "viewer" or query_class is QueryClass.READ


class GraphService:
    """Domain logic of GraphService; callers were authorized by the chain."""

    def __init__(
        self,
        *,
        store: GraphStore,
        engine: GraphEngine,
        audit: AuditLog,
        limits: QueryLimits,
        cleanups: Sequence[Callable[[str], Awaitable[object]]] = (),
        observer: EngineObserver | None = None,
    ) -> None:
        self._store = store
        # Engine calls as child spans and query-time samples (spans only without metrics).
        self._observe = observer or EngineObserver(None)
        self._cleanups = tuple(cleanups)
        self._engine = engine
        self._audit = audit
        self._limits = limits

    # --- graphs --------------------------------------------------------------

    @staticmethod
    def _schema_statements(statements: Sequence[str], field_name: str) -> None:
        for index, statement in enumerate(statements):
            try:
                analysis = analyze(statement)
                authorize(analysis, Role.ADMIN, supplied_parameters=(), allow_schema_ddl=True)
            except QueryRefused as refused:
                raise QueryRefused(
                    public_message=f"{field_name}[{index}]: {refused.public_message}",
                    reason=refused.reason,
                    detail=refused.detail,
                    audit_event=refused.audit_event,
                ) from refused
            if analysis.query_class is not QueryClass.SCHEMA_DDL:
                raise InvalidArgument(
                    public_message="only schema statements are allowed here",
                    reason="NOT_SCHEMA",
                    violations=[FieldViolation(f"{field_name}[{index}]", "not a schema statement")],
                )

    async def create(
        self, principal: Principal, *, name: str, description: str, schema: Sequence[str]
    ) -> GraphRecord:
        """Create a graph (its database, then its schema); the caller is admin."""
        self._schema_statements(schema, "schema")
        graph_id = str(uuid.uuid4())
        await self._engine.create_database(graph_id)
        try:
            if schema:
                await self._engine.apply_schema(graph_id, schema)
            return await self._store.create(
                graph_id=graph_id, name=name, description=description, created_by=principal.user_id
            )
        except BaseException:
            await self._engine.drop_database(graph_id)
            raise

    async def get(self, principal: Principal, graph_id: str) -> GraphRecord:
        """One graph the caller belongs to."""
        return await self._store.get(graph_id, principal.user_id)

    async def list_graphs(
        self, principal: Principal, *, page_size: int, page_token: str
    ) -> tuple[list[GraphRecord], str]:
        """A page of the caller's top-level graphs and the next page's token."""
        size = page_size or 50
        records = await self._store.list_for_user(
            principal.user_id, limit=size + 1, after=decode_page_token(page_token)
        )
        return page_of(records, size, lambda r: (r.created_at, r.graph_id))

    async def delete(self, graph_id: str) -> list[str]:
        """Delete a graph, its subgraphs and their databases; returns the deleted ids."""
        deleted = await self._store.delete(graph_id)
        for each in deleted:
            await self._engine.drop_database(each)
            for cleanup in self._cleanups:
                await cleanup(each)
        return deleted

    async def create_subgraph(self, principal: Principal, graph_id: str, name: str) -> GraphRecord:
        """A separate database whose access is the parent's."""
        if await self._store.parent_of(graph_id) is not None:
            raise FailedPrecondition(
                public_message="subgraphs cannot have subgraphs", reason="NESTED_SUBGRAPH"
            )
        subgraph_id = str(uuid.uuid4())
        await self._engine.create_database(subgraph_id)
        try:
            # Only admins reach here (the policy), so the creator's role on the
            # subgraph, its parent's, is admin: no need to read it back.
            return await self._store.create(
                graph_id=subgraph_id,
                name=name,
                description="",
                created_by=principal.user_id,
                parent_graph_id=graph_id,
            )
        except BaseException:
            await self._engine.drop_database(subgraph_id)
            raise

    async def subgraphs(self, principal: Principal, graph_id: str) -> list[GraphRecord]:
        """A graph's subgraphs."""
        return await self._store.subgraphs(graph_id, principal.user_id)

    # --- members -------------------------------------------------------------

    # Membership lives on the top-level graph; the store resolves a subgraph's parent.

    async def add_member(self, graph_id: str, email: str, role: int) -> MemberRecord:
        """Give an existing user a role on the graph."""
        return await self._store.add_member(graph_id, email, role_name(role))

    async def update_member(self, graph_id: str, user_id: str, role: int) -> MemberRecord:
        """Change a member's role; the last admin cannot step down."""
        return await self._store.change_member(graph_id, user_id, role_name(role))

    async def remove_member(self, graph_id: str, user_id: str) -> None:
        """Take a member's access away; the last admin cannot be removed."""
        await self._store.change_member(graph_id, user_id, None)

    async def members(self, graph_id: str) -> list[MemberRecord]:
        """The graph's members."""
        return await self._store.members(graph_id)

    # --- schema --------------------------------------------------------------

    async def schema(self, graph_id: str) -> list[graph_pb2.Table]:
        """The graph's tables."""
        return await self._engine.get_schema(graph_id)

    async def update_schema(
        self, graph_id: str, statements: Sequence[str]
    ) -> list[graph_pb2.Table]:
        """Run schema statements, all or nothing."""
        self._schema_statements(statements, "statements")
        return await self._engine.apply_schema(graph_id, statements)

    # --- queries ---------------------------------------------------------------

    def _check(
        self, query: str, role: str, parameters: Mapping[str, common_pb2.Value]
    ) -> QueryClass:
        analysis = analyze(query)
        authorize(analysis, _ROLES[role], supplied_parameters=parameters.keys())
        return analysis.query_class

    def _timeout(self, role: str, requested_ms: int, deadline: float | None) -> float:
        limits = self._limits
        timeout = requested_ms / 1000 if requested_ms else limits.default_timeout_seconds
        timeout = min(timeout, limits.timeout_ceiling_seconds[role])
        if deadline is not None:
            timeout = min(timeout, max(deadline - 0.05, 0.01))
        return timeout

    async def execute(
        self,
        graph_id: str,
        role: str,
        *,
        query: str,
        parameters: Mapping[str, common_pb2.Value],
        timeout_ms: int,
        row_limit: int,
        deadline: float | None,
    ) -> graph_pb2.ExecuteQueryResponse:
        """Run one statement and return its rows, up to the row limit."""
        query_class = self._check(query, role, parameters)
        limits = self._limits
        with self._observe.query(query_class.value, operation="execute"):
            response = await self._engine.execute(
                graph_id,
                query,
                parameters,
                read_only=_read_only(role, query_class),
                timeout_seconds=self._timeout(role, timeout_ms, deadline),
                row_limit=min(row_limit or limits.default_row_limit, limits.max_row_limit),
                max_result_bytes=limits.max_result_bytes,
            )
        response.query_class = QUERY_CLASS_VALUES[query_class]
        return response

    async def stream(
        self,
        graph_id: str,
        role: str,
        *,
        query: str,
        parameters: Mapping[str, common_pb2.Value],
        timeout_ms: int,
        row_limit: int,
        deadline: float | None,
    ) -> AsyncIterator[graph_pb2.StreamQueryResponse]:
        """Stream one statement's rows; the engine work stops when the caller does."""
        query_class = self._check(query, role, parameters)
        limits = self._limits
        stream = self._engine.stream(
            graph_id,
            query,
            parameters,
            read_only=_read_only(role, query_class),
            timeout_seconds=self._timeout(role, timeout_ms, deadline),
            row_limit=min(row_limit or limits.stream_row_limit, limits.stream_row_limit),
            batch_rows=limits.stream_batch_rows,
            stream_timeout_seconds=None if deadline is None else max(deadline, 0.01),
        )
        try:
            with self._observe.query(query_class.value, operation="stream") as call:
                async for message in stream:
                    if message.HasField("summary"):
                        message.summary.query_class = QUERY_CLASS_VALUES[query_class]
                        # The engine's own time: a slow reader is not a slow query.
                        call.engine_seconds = message.summary.execution_time_ms / 1000
                    yield message
        finally:
            await stream.aclose()

    def analyze(self, query: str) -> tuple[graph_pb2.QueryClass.ValueType, list[str]]:
        """The class of a statement and why, without running it."""
        try:
            analysis = analyze(query)
        except QueryRefused as refused:
            self._audit.emit(
                AuditEventType.INJECTION_ATTEMPT,
                risk=RiskLevel.MEDIUM,
                outcome="refused",
                reason=refused.reason,
            )
            raise
        return QUERY_CLASS_VALUES[analysis.query_class], list(analysis.reasons)


def seconds_left(time_remaining: float | None) -> float | None:
    """A gRPC deadline as seconds from now (None without a deadline)."""
    if time_remaining is None or math.isinf(time_remaining):
        return None
    return time_remaining
