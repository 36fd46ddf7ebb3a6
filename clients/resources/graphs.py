"""``client.graphs``: graphs, subgraphs, members and schema (GraphService).

Reads (get, list, members, schema) are retried when the server sheds load;
everything that changes a graph is sent once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from graphgate.clients.contract import rpc
from graphgate.clients.models import Graph, Member, Role, Table
from graphgate.clients.transport import AsyncTransport, Op, Transport
from graphgate.v1 import graph_pb2

#: Inside the classes below ``list`` names their method, so annotations use this.
Tables = list[Table]


def _graph(reply: graph_pb2.CreateGraphResponse | graph_pb2.GetGraphResponse) -> Graph:
    return Graph.from_proto(reply.graph)


def _member(reply: graph_pb2.AddMemberResponse | graph_pb2.UpdateMemberResponse) -> Member:
    return Member.from_proto(reply.member)


def _tables(reply: graph_pb2.GetSchemaResponse | graph_pb2.UpdateSchemaResponse) -> list[Table]:
    return [Table.from_proto(t) for t in reply.tables]


def _create(name: str, description: str, schema: Sequence[str]) -> Op[Graph]:
    if isinstance(schema, str):
        raise TypeError("schema is a list of statements, not one string")
    request = graph_pb2.CreateGraphRequest(name=name, description=description, schema=list(schema))
    return Op(rpc("GraphService", "CreateGraph"), request, _graph)


def _get(graph_id: str) -> Op[Graph]:
    return Op(rpc("GraphService", "GetGraph"), graph_pb2.GetGraphRequest(graph_id=graph_id), _graph)


def _page(page_size: int, token: str) -> Op[tuple[list[Graph], str]]:
    return Op(
        rpc("GraphService", "ListGraphs"),
        graph_pb2.ListGraphsRequest(page_size=page_size, page_token=token),
        lambda r: ([Graph.from_proto(g) for g in r.graphs], r.next_page_token),
    )


def _delete(graph_id: str) -> Op[None]:
    return Op(
        rpc("GraphService", "DeleteGraph"),
        graph_pb2.DeleteGraphRequest(graph_id=graph_id),
        lambda _: None,
    )


def _create_subgraph(graph_id: str, name: str) -> Op[Graph]:
    return Op(
        rpc("GraphService", "CreateSubgraph"),
        graph_pb2.CreateSubgraphRequest(graph_id=graph_id, name=name),
        lambda r: Graph.from_proto(r.graph),
    )


def _list_subgraphs(graph_id: str) -> Op[list[Graph]]:
    return Op(
        rpc("GraphService", "ListSubgraphs"),
        graph_pb2.ListSubgraphsRequest(graph_id=graph_id),
        lambda r: [Graph.from_proto(g) for g in r.graphs],
    )


def _add_member(graph_id: str, email: str, role: Role | str) -> Op[Member]:
    request = graph_pb2.AddMemberRequest(
        graph_id=graph_id,
        email=email,
        role=Role.parse(role).to_proto(),  # type: ignore[arg-type]
    )
    return Op(rpc("GraphService", "AddMember"), request, _member)


def _update_member(graph_id: str, user_id: str, role: Role | str) -> Op[Member]:
    request = graph_pb2.UpdateMemberRequest(
        graph_id=graph_id,
        user_id=user_id,
        role=Role.parse(role).to_proto(),  # type: ignore[arg-type]
    )
    return Op(rpc("GraphService", "UpdateMember"), request, _member)


def _remove_member(graph_id: str, user_id: str) -> Op[None]:
    return Op(
        rpc("GraphService", "RemoveMember"),
        graph_pb2.RemoveMemberRequest(graph_id=graph_id, user_id=user_id),
        lambda _: None,
    )


def _list_members(graph_id: str) -> Op[list[Member]]:
    return Op(
        rpc("GraphService", "ListMembers"),
        graph_pb2.ListMembersRequest(graph_id=graph_id),
        lambda r: [Member.from_proto(m) for m in r.members],
    )


def _schema(graph_id: str) -> Op[list[Table]]:
    return Op(
        rpc("GraphService", "GetSchema"), graph_pb2.GetSchemaRequest(graph_id=graph_id), _tables
    )


def _update_schema(graph_id: str, statements: Sequence[str]) -> Op[list[Table]]:
    if isinstance(statements, str):
        statements = [statements]
    return Op(
        rpc("GraphService", "UpdateSchema"),
        graph_pb2.UpdateSchemaRequest(graph_id=graph_id, statements=list(statements)),
        _tables,
    )


class Members:
    """Who may use a graph, and how (``client.graphs.members``)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def add(self, graph_id: str, email: str, role: Role | str) -> Member:
        """Give an existing user ``role`` (``"admin"``, ``"member"``, ``"viewer"``)."""
        return self._t.run(_add_member(graph_id, email, role))

    def update(self, graph_id: str, user_id: str, role: Role | str) -> Member:
        """Change a member's role; the last admin cannot step down."""
        return self._t.run(_update_member(graph_id, user_id, role))

    def remove(self, graph_id: str, user_id: str) -> None:
        """Take a member's access away; the last admin cannot be removed."""
        self._t.run(_remove_member(graph_id, user_id))

    def list(self, graph_id: str) -> list[Member]:
        """The graph's members, admins first."""
        return self._t.run(_list_members(graph_id))


class Subgraphs:
    """Separate databases under a graph, sharing its access (``client.graphs.subgraphs``)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, graph_id: str, name: str) -> Graph:
        """Make a subgraph of ``graph_id`` (admins only)."""
        return self._t.run(_create_subgraph(graph_id, name))

    def list(self, graph_id: str) -> list[Graph]:
        """The subgraphs of ``graph_id``, oldest first."""
        return self._t.run(_list_subgraphs(graph_id))


class Graphs:
    """The caller's graphs."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.members = Members(transport)
        self.subgraphs = Subgraphs(transport)

    def create(self, name: str, *, description: str = "", schema: Sequence[str] = ()) -> Graph:
        """Make a graph; the caller becomes its admin. ``schema`` holds DDL
        statements (``CREATE NODE TABLE ...``) run on creation."""
        return self._t.run(_create(name, description, schema))

    def get(self, graph_id: str) -> Graph:
        """One graph the caller belongs to."""
        return self._t.run(_get(graph_id))

    def list(self, *, page_size: int = 0) -> Iterator[Graph]:
        """Every top-level graph the caller belongs to, oldest first; pages are
        fetched as the iterator advances (``page_size`` 0: the server's default)."""
        token = ""
        while True:
            graphs, token = self._t.run(_page(page_size, token))
            yield from graphs
            if not token:
                return

    def delete(self, graph_id: str) -> None:
        """Delete a graph, its subgraphs and their data (admins only)."""
        self._t.run(_delete(graph_id))

    def schema(self, graph_id: str) -> Tables:
        """The graph's node and relationship tables."""
        return self._t.run(_schema(graph_id))

    def update_schema(self, graph_id: str, statements: Sequence[str]) -> Tables:
        """Run schema statements in order, all or nothing (admins only)."""
        return self._t.run(_update_schema(graph_id, statements))


class AsyncMembers:
    """Who may use a graph, and how (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def add(self, graph_id: str, email: str, role: Role | str) -> Member:
        """Give an existing user ``role`` (``"admin"``, ``"member"``, ``"viewer"``)."""
        return await self._t.run(_add_member(graph_id, email, role))

    async def update(self, graph_id: str, user_id: str, role: Role | str) -> Member:
        """Change a member's role; the last admin cannot step down."""
        return await self._t.run(_update_member(graph_id, user_id, role))

    async def remove(self, graph_id: str, user_id: str) -> None:
        """Take a member's access away; the last admin cannot be removed."""
        await self._t.run(_remove_member(graph_id, user_id))

    async def list(self, graph_id: str) -> list[Member]:
        """The graph's members, admins first."""
        return await self._t.run(_list_members(graph_id))


class AsyncSubgraphs:
    """Subgraphs (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, graph_id: str, name: str) -> Graph:
        """Make a subgraph of ``graph_id`` (admins only)."""
        return await self._t.run(_create_subgraph(graph_id, name))

    async def list(self, graph_id: str) -> list[Graph]:
        """The subgraphs of ``graph_id``, oldest first."""
        return await self._t.run(_list_subgraphs(graph_id))


class AsyncGraphs:
    """The caller's graphs (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport
        self.members = AsyncMembers(transport)
        self.subgraphs = AsyncSubgraphs(transport)

    async def create(
        self, name: str, *, description: str = "", schema: Sequence[str] = ()
    ) -> Graph:
        """Make a graph; the caller becomes its admin."""
        return await self._t.run(_create(name, description, schema))

    async def get(self, graph_id: str) -> Graph:
        """One graph the caller belongs to."""
        return await self._t.run(_get(graph_id))

    async def list(self, *, page_size: int = 0) -> AsyncIterator[Graph]:
        """Every top-level graph the caller belongs to (``async for``), page by page."""
        token = ""
        while True:
            graphs, token = await self._t.run(_page(page_size, token))
            for graph in graphs:
                yield graph
            if not token:
                return

    async def delete(self, graph_id: str) -> None:
        """Delete a graph, its subgraphs and their data (admins only)."""
        await self._t.run(_delete(graph_id))

    async def schema(self, graph_id: str) -> Tables:
        """The graph's node and relationship tables."""
        return await self._t.run(_schema(graph_id))

    async def update_schema(self, graph_id: str, statements: Sequence[str]) -> Tables:
        """Run schema statements in order, all or nothing (admins only)."""
        return await self._t.run(_update_schema(graph_id, statements))
