"""GraphService servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphgate.server.context import current_call, current_principal
from graphgate.server.handlers import convert
from graphgate.server.handlers.backups import BackupHandlers
from graphgate.server.roles import ROLE_VALUES
from graphgate.server.services.backups import BackupService
from graphgate.server.services.graphs import GraphService, seconds_left
from graphgate.server.stores.graphs import GraphRecord, MemberRecord
from graphgate.v1 import common_pb2, graph_pb2


def _graph(record: GraphRecord) -> graph_pb2.Graph:
    return graph_pb2.Graph(
        graph_id=record.graph_id,
        name=record.name,
        description=record.description,
        parent_graph_id=record.parent_graph_id or "",
        role=ROLE_VALUES.get(record.role or "", common_pb2.ROLE_UNSPECIFIED),
        created_at=convert.timestamp(record.created_at),
    )


def _member(record: MemberRecord) -> graph_pb2.Member:
    return graph_pb2.Member(
        user_id=record.user_id, email=record.email, role=ROLE_VALUES[record.role]
    )


def _role() -> str:
    return current_call().graph_role


class GraphServicer(BackupHandlers):
    """Serves graphgate.v1.GraphService (backups through :class:`BackupHandlers`)."""

    def __init__(self, graphs: GraphService, backups: BackupService) -> None:
        super().__init__(backups)
        self._graphs = graphs

    async def CreateGraph(
        self, request: graph_pb2.CreateGraphRequest, context: Any
    ) -> graph_pb2.CreateGraphResponse:
        record = await self._graphs.create(
            current_principal(),
            name=request.name,
            description=request.description,
            schema=list(request.schema),
        )
        return graph_pb2.CreateGraphResponse(graph=_graph(record))

    async def GetGraph(
        self, request: graph_pb2.GetGraphRequest, context: Any
    ) -> graph_pb2.GetGraphResponse:
        record = await self._graphs.get(current_principal(), request.graph_id)
        return graph_pb2.GetGraphResponse(graph=_graph(record))

    async def ListGraphs(
        self, request: graph_pb2.ListGraphsRequest, context: Any
    ) -> graph_pb2.ListGraphsResponse:
        records, token = await self._graphs.list_graphs(
            current_principal(), page_size=request.page_size, page_token=request.page_token
        )
        return graph_pb2.ListGraphsResponse(
            graphs=[_graph(r) for r in records], next_page_token=token
        )

    async def DeleteGraph(
        self, request: graph_pb2.DeleteGraphRequest, context: Any
    ) -> graph_pb2.DeleteGraphResponse:
        await self._graphs.delete(request.graph_id)
        return graph_pb2.DeleteGraphResponse()

    async def CreateSubgraph(
        self, request: graph_pb2.CreateSubgraphRequest, context: Any
    ) -> graph_pb2.CreateSubgraphResponse:
        record = await self._graphs.create_subgraph(
            current_principal(), request.graph_id, request.name
        )
        return graph_pb2.CreateSubgraphResponse(graph=_graph(record))

    async def ListSubgraphs(
        self, request: graph_pb2.ListSubgraphsRequest, context: Any
    ) -> graph_pb2.ListSubgraphsResponse:
        records = await self._graphs.subgraphs(current_principal(), request.graph_id)
        return graph_pb2.ListSubgraphsResponse(graphs=[_graph(r) for r in records])

    async def AddMember(
        self, request: graph_pb2.AddMemberRequest, context: Any
    ) -> graph_pb2.AddMemberResponse:
        record = await self._graphs.add_member(request.graph_id, request.email, request.role)
        return graph_pb2.AddMemberResponse(member=_member(record))

    async def UpdateMember(
        self, request: graph_pb2.UpdateMemberRequest, context: Any
    ) -> graph_pb2.UpdateMemberResponse:
        record = await self._graphs.update_member(request.graph_id, request.user_id, request.role)
        return graph_pb2.UpdateMemberResponse(member=_member(record))

    async def RemoveMember(
        self, request: graph_pb2.RemoveMemberRequest, context: Any
    ) -> graph_pb2.RemoveMemberResponse:
        await self._graphs.remove_member(request.graph_id, request.user_id)
        return graph_pb2.RemoveMemberResponse()

    async def ListMembers(
        self, request: graph_pb2.ListMembersRequest, context: Any
    ) -> graph_pb2.ListMembersResponse:
        records = await self._graphs.members(request.graph_id)
        return graph_pb2.ListMembersResponse(members=[_member(r) for r in records])

    async def GetSchema(
        self, request: graph_pb2.GetSchemaRequest, context: Any
    ) -> graph_pb2.GetSchemaResponse:
        return graph_pb2.GetSchemaResponse(tables=await self._graphs.schema(request.graph_id))

    async def UpdateSchema(
        self, request: graph_pb2.UpdateSchemaRequest, context: Any
    ) -> graph_pb2.UpdateSchemaResponse:
        tables = await self._graphs.update_schema(request.graph_id, list(request.statements))
        return graph_pb2.UpdateSchemaResponse(tables=tables)

    async def ExecuteQuery(
        self, request: graph_pb2.ExecuteQueryRequest, context: Any
    ) -> graph_pb2.ExecuteQueryResponse:
        return await self._graphs.execute(
            request.graph_id,
            _role(),
            query=request.query,
            parameters=request.parameters,
            timeout_ms=request.timeout_ms,
            row_limit=request.row_limit,
            deadline=seconds_left(context.time_remaining()),
        )

    async def StreamQuery(
        self, request: graph_pb2.StreamQueryRequest, context: Any
    ) -> AsyncIterator[graph_pb2.StreamQueryResponse]:
        async for message in self._graphs.stream(
            request.graph_id,
            _role(),
            query=request.query,
            parameters=request.parameters,
            timeout_ms=request.timeout_ms,
            row_limit=request.row_limit,
            deadline=seconds_left(context.time_remaining()),
        ):
            yield message

    async def AnalyzeQuery(
        self, request: graph_pb2.AnalyzeQueryRequest, context: Any
    ) -> graph_pb2.AnalyzeQueryResponse:
        query_class, reasons = self._graphs.analyze(request.query)
        return graph_pb2.AnalyzeQueryResponse(query_class=query_class, reasons=reasons)
