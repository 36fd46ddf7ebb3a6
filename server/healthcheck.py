"""``python -m graphgate.server.healthcheck``: exit 0 when the server is SERVING.

Used by the container's HEALTHCHECK; reads ``GRAPHGATE_GRPC_LISTEN`` through
the settings object like every other entry point.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphgate.server.settings import load_settings


def check(address: str, timeout: float = 3.0) -> bool:
    """True when the server at ``address`` reports SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    listen = load_settings(os.environ).grpc_listen
    host, _, port = listen.rpartition(":")
    target = f"127.0.0.1:{port}" if host in {"0.0.0.0", "[::]"} else listen  # noqa: S104
    sys.exit(0 if check(target) else 1)
