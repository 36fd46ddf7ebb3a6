"""The RPCs the SDK calls and their policies, read from the generated descriptors.

Each RPC's ``graphgate.v1.policy`` option says whether it writes; the retry
logic reads that flag here, so the SDK shares the server's one source of truth
without importing ``graphgate.server`` (a client install does not need the
server's dependencies).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf import descriptor

from graphgate.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    graph_pb2,
    graph_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
    policy_pb2,
    upload_pb2,
    upload_pb2_grpc,
)

#: Service full name -> (descriptor module, generated stub class).
_SERVICES: dict[str, tuple[Any, Any]] = {
    "graphgate.v1.AuthService": (auth_pb2, auth_pb2_grpc.AuthServiceStub),
    "graphgate.v1.ApiKeyService": (keys_pb2, keys_pb2_grpc.ApiKeyServiceStub),
    "graphgate.v1.GraphService": (graph_pb2, graph_pb2_grpc.GraphServiceStub),
    "graphgate.v1.UploadService": (upload_pb2, upload_pb2_grpc.UploadServiceStub),
    "graphgate.v1.OperatorService": (operator_pb2, operator_pb2_grpc.OperatorServiceStub),
}


@dataclass(frozen=True, slots=True)
class Rpc:
    """One RPC of the contract, as the SDK needs it."""

    service: str
    name: str
    #: From the policy option: the call changes state, so it is never retried.
    writes: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        """The full method name, ``/graphgate.v1.AuthService/Login``."""
        return f"/{self.service}/{self.name}"


@cache
def rpc(service: str, name: str) -> Rpc:
    """The :class:`Rpc` for ``service`` (short or full name) and method ``name``.

    Raises :class:`KeyError` for a name that is not in the contract.
    """
    full = service if "." in service else f"graphgate.v1.{service}"
    module, _ = _SERVICES[full]
    method: descriptor.MethodDescriptor = module.DESCRIPTOR.services_by_name[
        full.rsplit(".", 1)[1]
    ].methods_by_name[name]
    policy = method.GetOptions().Extensions[policy_pb2.policy]
    return Rpc(
        service=full,
        name=name,
        writes=bool(policy.writes),
        server_streaming=bool(method.server_streaming),
    )


def all_rpcs() -> list[Rpc]:
    """Every RPC of the graphgate services, in contract order."""
    found = []
    for full, (module, _) in _SERVICES.items():
        service = module.DESCRIPTOR.services_by_name[full.rsplit(".", 1)[1]]
        found += [rpc(full, m.name) for m in service.methods]
    return found


def stub_classes() -> dict[str, Any]:
    """Service full name -> generated stub class."""
    return {name: stub for name, (_, stub) in _SERVICES.items()}
