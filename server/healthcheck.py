"""``python -m graphgate.server.healthcheck``: exit 0 when the server is SERVING.

Used by the container's HEALTHCHECK; reads ``GRAPHGATE_GRPC_LISTEN`` through
the settings object like every other entry point.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from graphgate.server.settings import parse_settings
from graphgate.server.tls import internal_channel_credentials


def check(
    address: str, timeout: float = 3.0, credentials: grpc.ChannelCredentials | None = None
) -> bool:
    """True when the server at ``address`` reports SERVING (over TLS with ``credentials``)."""
    channel = (
        grpc.secure_channel(address, credentials)
        if credentials is not None
        else grpc.insecure_channel(address)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    # Parsing only: in production the secrets may live in Secrets Manager,
    # and the health check must not fail the full startup validation.
    settings = parse_settings(os.environ)
    host, _, port = settings.grpc_listen.rpartition(":")
    target = f"127.0.0.1:{port}" if host in {"0.0.0.0", "[::]"} else settings.grpc_listen  # noqa: S104
    sys.exit(0 if check(target, credentials=internal_channel_credentials(settings)) else 1)
