"""C9 roles and isolation, through a real channel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio

from graphgate.v1 import common_pb2, graph_pb2, graph_pb2_grpc
from tests.support import Account, bearer, code_of, register

pytestmark = pytest.mark.security

SCHEMA = ["CREATE NODE TABLE Item(id INT64 PRIMARY KEY, secret STRING)"]


@dataclass
class Tenant:
    owner: Account
    graph_id: str


async def _tenant(channel: aio.Channel, secret: str) -> Tenant:
    owner = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    created = await stub.CreateGraph(
        graph_pb2.CreateGraphRequest(name="tenant", schema=SCHEMA), metadata=bearer(owner.token)
    )
    graph_id = created.graph.graph_id
    await stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(
            graph_id=graph_id,
            query="CREATE (:Item {id: 1, secret: $s})",
            parameters={"s": common_pb2.Value(string_value=secret)},
        ),
        metadata=bearer(owner.token),
    )
    return Tenant(owner, graph_id)


def _calls(graph_id: str) -> list[tuple[str, object]]:
    """Every GraphService RPC that names a graph, with a harmless request."""
    user = str(uuid.uuid4())
    return [
        ("GetGraph", graph_pb2.GetGraphRequest(graph_id=graph_id)),
        ("DeleteGraph", graph_pb2.DeleteGraphRequest(graph_id=graph_id)),
        ("CreateSubgraph", graph_pb2.CreateSubgraphRequest(graph_id=graph_id, name="x")),
        ("ListSubgraphs", graph_pb2.ListSubgraphsRequest(graph_id=graph_id)),
        (
            "AddMember",
            graph_pb2.AddMemberRequest(
                graph_id=graph_id, email="a@example.com", role=common_pb2.ROLE_VIEWER
            ),
        ),
        (
            "UpdateMember",
            graph_pb2.UpdateMemberRequest(
                graph_id=graph_id, user_id=user, role=common_pb2.ROLE_ADMIN
            ),
        ),
        ("RemoveMember", graph_pb2.RemoveMemberRequest(graph_id=graph_id, user_id=user)),
        ("ListMembers", graph_pb2.ListMembersRequest(graph_id=graph_id)),
        ("GetSchema", graph_pb2.GetSchemaRequest(graph_id=graph_id)),
        (
            "UpdateSchema",
            graph_pb2.UpdateSchemaRequest(
                graph_id=graph_id, statements=["CREATE NODE TABLE T(id INT64 PRIMARY KEY)"]
            ),
        ),
        (
            "ExecuteQuery",
            graph_pb2.ExecuteQueryRequest(
                graph_id=graph_id, query="MATCH (i:Item) RETURN i.secret"
            ),
        ),
    ]


async def _outcome(
    stub: graph_pb2_grpc.GraphServiceStub, name: str, request: object, token: str
) -> tuple[str, str]:
    try:
        await getattr(stub, name)(request, metadata=bearer(token))
    except grpc.RpcError as error:
        return code_of(error).name, error.details() or ""
    return "OK", ""


async def test_c9_another_graph_answers_exactly_like_an_unknown_one(channel: aio.Channel) -> None:
    """C9: every graph RPC on another tenant's graph answers NOT_FOUND with the
    same message as a graph that does not exist; nothing of it leaks."""
    victim = await _tenant(channel, "victim-secret")
    attacker = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    unknown = str(uuid.uuid4())
    for (name, request), (_, unknown_request) in zip(
        _calls(victim.graph_id), _calls(unknown), strict=True
    ):
        foreign = await _outcome(stub, name, request, attacker.token)
        missing = await _outcome(stub, name, unknown_request, attacker.token)
        assert foreign == missing == ("NOT_FOUND", "graph not found"), name
    listed = await stub.ListGraphs(graph_pb2.ListGraphsRequest(), metadata=bearer(attacker.token))
    assert victim.graph_id not in {g.graph_id for g in listed.graphs}
    # The victim's data is intact.
    rows = await stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(
            graph_id=victim.graph_id, query="MATCH (i:Item) RETURN i.secret"
        ),
        metadata=bearer(victim.owner.token),
    )
    assert rows.rows[0].values[0].string_value == "victim-secret"


async def test_c9_each_graph_is_its_own_database(channel: aio.Channel) -> None:
    """C9: the same table name in two graphs holds different data."""
    first = await _tenant(channel, "first")
    second = await _tenant(channel, "second")
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    for tenant, expected in ((first, "first"), (second, "second")):
        rows = await stub.ExecuteQuery(
            graph_pb2.ExecuteQueryRequest(
                graph_id=tenant.graph_id, query="MATCH (i:Item) RETURN i.secret"
            ),
            metadata=bearer(tenant.owner.token),
        )
        assert [r.values[0].string_value for r in rows.rows] == [expected]


async def test_c9_roles_admin_member_viewer(channel: aio.Channel) -> None:
    """C9: viewers read only; members read and write data; only admins manage
    members, schema and subgraphs; a role change applies on the next call."""
    tenant = await _tenant(channel, "s")
    member = await register(channel)
    viewer = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    owner = bearer(tenant.owner.token)
    added = {}
    for account, role in ((member, common_pb2.ROLE_MEMBER), (viewer, common_pb2.ROLE_VIEWER)):
        reply = await stub.AddMember(
            graph_pb2.AddMemberRequest(graph_id=tenant.graph_id, email=account.email, role=role),
            metadata=owner,
        )
        added[account.user_id] = reply.member
    write = graph_pb2.ExecuteQueryRequest(graph_id=tenant.graph_id, query="CREATE (:Item {id: 2})")
    read = graph_pb2.ExecuteQueryRequest(
        graph_id=tenant.graph_id, query="MATCH (i:Item) RETURN count(*)"
    )
    await stub.ExecuteQuery(write, metadata=bearer(member.token))
    assert (await stub.ExecuteQuery(read, metadata=bearer(viewer.token))).rows[0].values[
        0
    ].int_value == 2
    denied = await _outcome(stub, "ExecuteQuery", write, viewer.token)
    assert denied[0] == "PERMISSION_DENIED"
    for name, request in _calls(tenant.graph_id):
        if name in {
            "AddMember",
            "UpdateMember",
            "RemoveMember",
            "UpdateSchema",
            "CreateSubgraph",
            "DeleteGraph",
        }:
            assert (await _outcome(stub, name, request, member.token))[0] == "PERMISSION_DENIED"
    # Promote the viewer: the next call sees it.
    await stub.UpdateMember(
        graph_pb2.UpdateMemberRequest(
            graph_id=tenant.graph_id, user_id=viewer.user_id, role=common_pb2.ROLE_MEMBER
        ),
        metadata=owner,
    )
    await stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(graph_id=tenant.graph_id, query="CREATE (:Item {id: 3})"),
        metadata=bearer(viewer.token),
    )
    # Remove the member: the next call answers like an unknown graph.
    await stub.RemoveMember(
        graph_pb2.RemoveMemberRequest(graph_id=tenant.graph_id, user_id=member.user_id),
        metadata=owner,
    )
    assert (await _outcome(stub, "ExecuteQuery", read, member.token))[0] == "NOT_FOUND"


async def test_c9_the_last_admin_cannot_leave(channel: aio.Channel) -> None:
    tenant = await _tenant(channel, "s")
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    for name, request in (
        (
            "RemoveMember",
            graph_pb2.RemoveMemberRequest(graph_id=tenant.graph_id, user_id=tenant.owner.user_id),
        ),
        (
            "UpdateMember",
            graph_pb2.UpdateMemberRequest(
                graph_id=tenant.graph_id, user_id=tenant.owner.user_id, role=common_pb2.ROLE_VIEWER
            ),
        ),
    ):
        assert (await _outcome(stub, name, request, tenant.owner.token))[0] == "FAILED_PRECONDITION"


async def test_c9_subgraphs_are_separate_databases_with_the_parents_access(
    channel: aio.Channel,
) -> None:
    """C9: a subgraph has its own data; its members are the parent's, with the
    parent's roles (viewers cannot write to subgraphs either)."""
    tenant = await _tenant(channel, "parent")
    viewer = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    owner = bearer(tenant.owner.token)
    sub = await stub.CreateSubgraph(
        graph_pb2.CreateSubgraphRequest(graph_id=tenant.graph_id, name="child"), metadata=owner
    )
    sub_id = sub.graph.graph_id
    assert sub.graph.parent_graph_id == tenant.graph_id
    await stub.UpdateSchema(
        graph_pb2.UpdateSchemaRequest(graph_id=sub_id, statements=SCHEMA), metadata=owner
    )
    empty = await stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(graph_id=sub_id, query="MATCH (i:Item) RETURN count(*)"),
        metadata=owner,
    )
    assert empty.rows[0].values[0].int_value == 0
    await stub.AddMember(
        graph_pb2.AddMemberRequest(
            graph_id=tenant.graph_id, email=viewer.email, role=common_pb2.ROLE_VIEWER
        ),
        metadata=owner,
    )
    write = graph_pb2.ExecuteQueryRequest(graph_id=sub_id, query="CREATE (:Item {id: 9})")
    assert (await _outcome(stub, "ExecuteQuery", write, viewer.token))[0] == "PERMISSION_DENIED"
    listed = await stub.ListSubgraphs(
        graph_pb2.ListSubgraphsRequest(graph_id=tenant.graph_id), metadata=bearer(viewer.token)
    )
    assert [g.graph_id for g in listed.graphs] == [sub_id]
    stranger = await register(channel)
    assert (await _outcome(stub, "ExecuteQuery", write, stranger.token)) == (
        "NOT_FOUND",
        "graph not found",
    )


async def test_c9_member_calls_on_a_subgraph_act_on_its_parent(channel: aio.Channel) -> None:
    """C9: a subgraph has no members of its own: adding, changing, removing and
    listing members through a subgraph's id does so on its parent."""
    tenant = await _tenant(channel, "parent")
    member = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    owner = bearer(tenant.owner.token)
    sub = await stub.CreateSubgraph(
        graph_pb2.CreateSubgraphRequest(graph_id=tenant.graph_id, name="child"), metadata=owner
    )
    sub_id = sub.graph.graph_id
    await stub.AddMember(
        graph_pb2.AddMemberRequest(
            graph_id=sub_id, email=member.email, role=common_pb2.ROLE_VIEWER
        ),
        metadata=owner,
    )

    async def roles(graph_id: str) -> dict[str, int]:
        listed = await stub.ListMembers(
            graph_pb2.ListMembersRequest(graph_id=graph_id), metadata=owner
        )
        return {m.email: m.role for m in listed.members}

    expected = {tenant.owner.email: common_pb2.ROLE_ADMIN, member.email: common_pb2.ROLE_VIEWER}
    assert await roles(tenant.graph_id) == await roles(sub_id) == expected
    await stub.UpdateMember(
        graph_pb2.UpdateMemberRequest(
            graph_id=sub_id, user_id=member.user_id, role=common_pb2.ROLE_MEMBER
        ),
        metadata=owner,
    )
    assert (await roles(tenant.graph_id))[member.email] == common_pb2.ROLE_MEMBER
    await stub.RemoveMember(
        graph_pb2.RemoveMemberRequest(graph_id=sub_id, user_id=member.user_id), metadata=owner
    )
    assert await roles(tenant.graph_id) == {tenant.owner.email: common_pb2.ROLE_ADMIN}
    query = graph_pb2.ExecuteQueryRequest(graph_id=tenant.graph_id, query="RETURN 1")
    assert (await _outcome(stub, "ExecuteQuery", query, member.token))[0] == "NOT_FOUND"


async def test_c9_deleting_a_graph_deletes_its_subgraphs(channel: aio.Channel) -> None:
    tenant = await _tenant(channel, "doomed")
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    owner = bearer(tenant.owner.token)
    sub = await stub.CreateSubgraph(
        graph_pb2.CreateSubgraphRequest(graph_id=tenant.graph_id, name="c"), metadata=owner
    )
    await stub.DeleteGraph(graph_pb2.DeleteGraphRequest(graph_id=tenant.graph_id), metadata=owner)
    for graph_id in (tenant.graph_id, sub.graph.graph_id):
        outcome = await _outcome(
            stub, "GetGraph", graph_pb2.GetGraphRequest(graph_id=graph_id), tenant.owner.token
        )
        assert outcome[0] == "NOT_FOUND"


async def test_graphs_page_through_a_users_graphs(channel: aio.Channel) -> None:
    owner = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    created = set()
    for i in range(5):
        reply = await stub.CreateGraph(
            graph_pb2.CreateGraphRequest(name=f"g{i}"), metadata=bearer(owner.token)
        )
        created.add(reply.graph.graph_id)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListGraphs(
            graph_pb2.ListGraphsRequest(page_size=2, page_token=token), metadata=bearer(owner.token)
        )
        seen += [g.graph_id for g in page.graphs]
        assert all(g.role == common_pb2.ROLE_ADMIN for g in page.graphs)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen, key=list(seen).index)
    assert set(seen) == created
    bad = await _outcome(
        stub, "ListGraphs", graph_pb2.ListGraphsRequest(page_token="garbage!"), owner.token
    )
    assert bad[0] == "INVALID_ARGUMENT"
