"""Assembles the gRPC server: ceilings, the interceptor chain, servicers, health.

:func:`interceptor_chain` is the whole security chain, outermost first, on one
screen. :class:`GraphgateServer` binds it to an address, reports health per
service and drains gracefully.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from graphgate.interceptors.audit import AuditInterceptor
from graphgate.interceptors.errors import ErrorsInterceptor
from graphgate.interceptors.telemetry import TelemetryInterceptor
from graphgate.interceptors.validation import ValidationInterceptor
from graphgate.server.audit import AuditLog
from graphgate.server.contract import service_descriptors
from graphgate.server.errors import ConfigurationError
from graphgate.server.handlers.registry import service_handlers
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings

_log = logging.getLogger("graphgate.server")


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What the chain and the servicers are built from."""

    settings: Settings
    stores: Stores
    audit: AuditLog


def interceptor_chain(deps: Dependencies) -> list[aio.ServerInterceptor]:
    """The security chain, outermost first (DESIGN.md, "Interceptor chain")."""
    settings = deps.settings
    return [
        TelemetryInterceptor(trusted_proxies=settings.trusted_proxies),
        AuditInterceptor(audit_log=deps.audit),
        ErrorsInterceptor(),
        ValidationInterceptor(),
    ]


def servicers(deps: Dependencies) -> dict[str, object]:
    """The servicer of each contract service that has landed, by service name."""
    return {}


class GraphgateServer:
    """One grpc.aio server with graphgate's chain, health and reflection."""

    def __init__(self, deps: Dependencies) -> None:
        settings = deps.settings
        self._deps = deps
        self._server = aio.server(
            interceptors=interceptor_chain(deps),
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 20_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers(service_handlers(servicers(deps)))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._service_names = [s.full_name for s in service_descriptors()]
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = 0

    async def start(self, address: str) -> int:
        """Bind ``address`` and start serving; returns the bound port."""
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigurationError([f"cannot listen on {address}: address in use?"]) from exc
        if self.port == 0:
            raise ConfigurationError([f"cannot listen on {address}: address in use?"])
        await self._server.start()
        for name in ["", *self._service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        _log.info("gRPC listening on %s", address)
        return self.port

    async def drain(self, *, pause: float, grace: float) -> None:
        """Stop gracefully: NOT_SERVING, a pause for load balancers, then stop(grace).

        Calls in flight get ``grace`` seconds to finish; then they are cancelled.
        """
        await self._health.enter_graceful_shutdown()
        if pause > 0:
            await asyncio.sleep(pause)
        await self._server.stop(grace)

    async def wait(self) -> None:
        """Wait until the server has stopped."""
        await self._server.wait_for_termination()
