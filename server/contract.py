"""The contract as data: every RPC's descriptor and security policy.

Interceptors, the REST sidecar and the docs read RPC policies from here, and
this module reads them from the ``graphgate.v1.policy`` method option in the
generated descriptors: there is no table of method names in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pool, message_factory
from google.protobuf.message import Message

from graphgate.v1 import auth_pb2, graph_pb2, keys_pb2, operator_pb2, policy_pb2, upload_pb2

#: The modules whose services graphgate serves.
_SERVICE_MODULES = (auth_pb2, keys_pb2, graph_pb2, upload_pb2, operator_pb2)

#: Standard services we serve without a graphgate policy: they carry no user data.
INFRASTRUCTURE_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One RPC of the contract."""

    full_method: str
    service: str
    name: str
    descriptor: descriptor.MethodDescriptor
    request_type: type[Message]
    response_type: type[Message]
    policy: policy_pb2.MethodPolicy
    server_streaming: bool
    http_rule: http_pb2.HttpRule | None

    @property
    def access(self) -> policy_pb2.Access.ValueType:
        """The ``graphgate.v1.Access`` value of the policy."""
        return self.policy.access

    @property
    def needs_graph(self) -> bool:
        """True when the policy is a graph role: the request names a graph_id."""
        return self.policy.access in _GRAPH_ACCESS


_GRAPH_ACCESS = frozenset(
    {policy_pb2.ACCESS_GRAPH_VIEWER, policy_pb2.ACCESS_GRAPH_MEMBER, policy_pb2.ACCESS_GRAPH_ADMIN}
)


def service_descriptors() -> list[descriptor.ServiceDescriptor]:
    """The graphgate services, in contract order."""
    return [s for m in _SERVICE_MODULES for s in m.DESCRIPTOR.services_by_name.values()]


@cache
def methods() -> Mapping[str, MethodInfo]:
    """Every graphgate RPC by full method name (``/graphgate.v1.AuthService/Login``)."""
    pool = descriptor_pool.Default()
    found: dict[str, MethodInfo] = {}
    for service in service_descriptors():
        for method in service.methods:
            options = method.GetOptions()
            rule = options.Extensions[annotations_pb2.http]
            full = f"/{service.full_name}/{method.name}"
            found[full] = MethodInfo(
                full_method=full,
                service=service.full_name,
                name=method.name,
                descriptor=method,
                request_type=message_factory.GetMessageClass(
                    pool.FindMessageTypeByName(method.input_type.full_name)
                ),
                response_type=message_factory.GetMessageClass(
                    pool.FindMessageTypeByName(method.output_type.full_name)
                ),
                policy=options.Extensions[policy_pb2.policy],
                server_streaming=method.server_streaming,
                http_rule=rule if options.HasExtension(annotations_pb2.http) else None,
            )
    return MappingProxyType(found)


def lookup(full_method: str) -> MethodInfo | None:
    """The RPC's info, or None for methods outside the graphgate contract."""
    return methods().get(full_method)


def is_infrastructure(full_method: str) -> bool:
    """True for health checks and reflection, which carry no user data."""
    service = full_method.lstrip("/").split("/", 1)[0]
    return service in INFRASTRUCTURE_SERVICES
