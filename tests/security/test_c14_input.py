"""C14 input validation and C16 safe errors, over every RPC of the contract."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio

from graphgate.server.contract import methods
from graphgate.server.lifecycle import Stores
from graphgate.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    graph_pb2,
    graph_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    policy_pb2,
)
from tests.support import bearer, code_of, new_email, register, strong_password

pytestmark = pytest.mark.security


def _callable(channel: aio.Channel, name: str) -> object:
    info = methods()[name]
    factory = channel.unary_stream if info.server_streaming else channel.unary_unary
    return factory(
        name,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=info.response_type.FromString,
    )


async def _status(
    channel: aio.Channel, name: str, metadata: list[tuple[str, str]]
) -> grpc.StatusCode:
    info = methods()[name]
    call = _callable(channel, name)
    try:
        result = call(info.request_type(), metadata=metadata)  # type: ignore[operator]
        if info.server_streaming:
            async for _ in result:
                pass
        else:
            await result
    except grpc.RpcError as error:
        return code_of(error)
    return grpc.StatusCode.OK


async def test_c1_every_non_public_rpc_refuses_callers_without_credentials(
    channel: aio.Channel,
) -> None:
    """C1: walking every RPC in the descriptors keeps new RPCs covered: all but
    the public ones answer UNAUTHENTICATED without credentials."""
    for name, info in methods().items():
        status = await _status(channel, name, [])
        if info.access == policy_pb2.ACCESS_PUBLIC:
            assert status != grpc.StatusCode.UNAUTHENTICATED, name
        else:
            assert status == grpc.StatusCode.UNAUTHENTICATED, name


async def test_c16_no_rpc_answers_internal_to_an_empty_request(channel: aio.Channel) -> None:
    """C16: an empty request, signed in, never ends in UNKNOWN or INTERNAL."""
    account = await register(channel)
    for name in methods():
        status = await _status(channel, name, bearer(account.token))
        assert status not in {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}, name


BAD_REGISTRATIONS = [
    {"email": "", "password": "x", "name": "n"},
    {"email": "not-an-email", "password": strong_password(), "name": "n"},
    {"email": "a@" + "x" * 260 + ".com", "password": strong_password(), "name": "n"},
    {"email": "a@example.com\r\nBcc: x@example.com", "password": strong_password(), "name": "n"},
    {"email": new_email(), "password": "", "name": "n"},
    {"email": new_email(), "password": "y" * 129, "name": "n"},
    {"email": new_email(), "password": "y" * 100_000, "name": "n"},
    {"email": new_email(), "password": strong_password(), "name": ""},
    {"email": new_email(), "password": strong_password(), "name": "bell\x07"},
    {"email": new_email(), "password": strong_password(), "name": "line\nbreak"},
    {"email": new_email(), "password": strong_password(), "name": "zero\u200bwidth"},
    {"email": new_email(), "password": strong_password(), "name": "n" * 101},
    {"email": new_email(), "password": strong_password(), "name": "n", "captcha_token": "t" * 3000},
]


@pytest.mark.parametrize("fields", BAD_REGISTRATIONS)
async def test_c14_bad_registration_input_is_refused_and_nothing_stored(
    channel: aio.Channel, stores: Stores, fields: dict[str, str]
) -> None:
    """C14: malformed emails, oversized fields, control characters, empty or
    huge passwords: INVALID_ARGUMENT, a generic message, no account stored."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await stub.Register(auth_pb2.RegisterRequest(**fields))
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert fields["password"][:20] not in (caught.value.details() or "") or not fields["password"]
    email = fields["email"]
    if email:
        stored = await stores.postgres.fetchval(
            "SELECT count(*) FROM users WHERE lower(email) = lower($1)", email
        )
        assert stored == 0


@pytest.mark.parametrize(
    "metadata",
    [
        [("authorization", "Bearer ")],
        [("authorization", "Basic dXNlcjpwYXNz")],
        [("authorization", "Bearer " + "a" * 5000)],
        [("authorization", "Bearer a.b.c")],
        [("x-api-key", "")],
        [("x-api-key", "gg_")],
        [("x-api-key", "gg_" + "z" * 64)],
        [("x-api-key", "' OR 1=1 --")],
    ],
)
async def test_c14_malformed_credentials_are_unauthenticated(
    channel: aio.Channel, metadata: list[tuple[str, str]]
) -> None:
    """C1/C5: malformed tokens and keys are UNAUTHENTICATED with a generic message."""
    with pytest.raises(grpc.RpcError) as caught:
        await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=metadata
        )
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "authentication required"


async def test_c14_bounded_query_parameters(channel: aio.Channel) -> None:
    """C14: parameters are bounded in count and in key shape; queries in size."""
    from graphgate.v1 import common_pb2

    account = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    graph = await stub.CreateGraph(
        graph_pb2.CreateGraphRequest(name="p"), metadata=bearer(account.token)
    )
    graph_id = graph.graph.graph_id
    too_many = {f"p{i}": common_pb2.Value(int_value=i) for i in range(65)}
    bad_key = {"bad key": common_pb2.Value(int_value=1)}
    for parameters, query in (
        (too_many, "RETURN 1"),
        (bad_key, "RETURN 1"),
        ({}, "RETURN '" + "x" * 100_001 + "'"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            await stub.ExecuteQuery(
                graph_pb2.ExecuteQueryRequest(
                    graph_id=graph_id, query=query, parameters=parameters
                ),
                metadata=bearer(account.token),
            )
        assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    deep = common_pb2.Value(int_value=1)
    for _ in range(40):
        deep = common_pb2.Value(list_value=common_pb2.ValueList(values=[deep]))
    with pytest.raises(grpc.RpcError) as caught:
        await stub.ExecuteQuery(
            graph_pb2.ExecuteQueryRequest(
                graph_id=graph_id, query="RETURN $d", parameters={"d": deep}
            ),
            metadata=bearer(account.token),
        )
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT


async def test_c14_api_key_names_are_single_line_text(channel: aio.Channel) -> None:
    account = await register(channel)
    stub = keys_pb2_grpc.ApiKeyServiceStub(channel)
    for name in ("", "a\nb", "tab\there", "x" * 101):
        with pytest.raises(grpc.RpcError) as caught:
            await stub.CreateApiKey(
                keys_pb2.CreateApiKeyRequest(name=name), metadata=bearer(account.token)
            )
        assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
