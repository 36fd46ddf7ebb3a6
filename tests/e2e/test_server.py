"""The assembled server through a real channel: health, reflection, the contract."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from graphgate.server.contract import methods, service_descriptors
from graphgate.v1 import auth_pb2, auth_pb2_grpc
from tests.conftest import status_of

SERVICES = {
    "graphgate.v1.AuthService",
    "graphgate.v1.ApiKeyService",
    "graphgate.v1.GraphService",
    "graphgate.v1.UploadService",
}


async def test_health_reports_serving_overall_and_per_service(channel: aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ["", *SERVICES]:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_four_services(channel: aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names = {s.name for s in reply.list_services_response.service}
        break
    assert names >= SERVICES
    assert "grpc.health.v1.Health" in names


async def test_reflection_serves_the_contract_with_its_policy(channel: aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="graphgate.v1.GraphService"
    )
    async for reply in stub.ServerReflectionInfo(iter([request])):
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto
        ]
        break
    graph_file = next(f for f in files if f.name == "graphgate/v1/graph.proto")
    assert [s.name for s in graph_file.service] == ["GraphService"]
    assert any(f.name == "graphgate/v1/policy.proto" for f in files)


def test_every_rpc_declares_a_policy_and_an_http_rule() -> None:
    found = methods()
    assert len(found) == sum(len(s.methods) for s in service_descriptors())
    for name, info in found.items():
        assert info.policy.access != 0, f"{name} has no access policy"
        assert info.http_rule is not None, f"{name} has no google.api.http rule"


async def test_every_rpc_answers_with_a_deliberate_status(channel: aio.Channel) -> None:
    """Each RPC of the contract is registered: an empty request never ends in
    UNKNOWN or INTERNAL (a crash) or "method not found"."""
    for name, info in methods().items():
        call = (
            channel.unary_unary(
                name,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=info.response_type.FromString,
            )
            if not info.server_streaming
            else channel.unary_stream(
                name,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=info.response_type.FromString,
            )
        )
        failure: grpc.RpcError | None = None
        try:
            result = call(info.request_type())
            if info.server_streaming:
                async for _ in result:
                    pass
            else:
                await result
        except grpc.RpcError as error:
            failure = error
        if failure is None:
            continue
        code = status_of(failure)
        assert code not in {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}, name
        if code == grpc.StatusCode.UNIMPLEMENTED:
            assert "not implemented yet" in (failure.details() or ""), name


async def test_invalid_request_lists_field_violations(channel: aio.Channel) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await stub.Register(
            auth_pb2.RegisterRequest(email="not-an-email", password="x", name="bell\x07")
        )
    assert status_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    fields = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field for v in bad.field_violations}
    assert fields == {"email", "name"}
