"""Assembles the gRPC server: ceilings, the interceptor chain, servicers, health.

:func:`interceptor_chain` is the whole security chain, outermost first, on one
screen. :class:`GraphgateServer` binds it to an address, reports health per
service and drains gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from graphgate.interceptors.admission import AdmissionInterceptor
from graphgate.interceptors.audit import AuditInterceptor
from graphgate.interceptors.authentication import AuthenticationInterceptor
from graphgate.interceptors.authorization import AuthorizationInterceptor
from graphgate.interceptors.chain import Chain, Link
from graphgate.interceptors.errors import ErrorsInterceptor
from graphgate.interceptors.fingerprint import FingerprintInterceptor
from graphgate.interceptors.metrics import MetricsInterceptor
from graphgate.interceptors.rate_limit import RateLimitInterceptor
from graphgate.interceptors.telemetry import TelemetryInterceptor
from graphgate.interceptors.validation import ValidationInterceptor
from graphgate.server.assembly import Services
from graphgate.server.contract import service_descriptors
from graphgate.server.errors import ConfigurationError
from graphgate.server.handlers.auth import AuthServicer
from graphgate.server.handlers.graphs import GraphServicer
from graphgate.server.handlers.keys import ApiKeyServicer
from graphgate.server.handlers.operator import OperatorServicer
from graphgate.server.handlers.registry import service_handlers
from graphgate.server.handlers.uploads import UploadServicer
from graphgate.server.tls import server_credentials

_log = logging.getLogger("graphgate.server")


def interceptor_chain(services: Services) -> list[Link]:
    """The security chain, outermost first (DESIGN.md, "Interceptor chain")."""
    settings = services.settings
    audit = services.audit
    rate_policy = services.rate_policy if settings.rate_limit_enabled else None
    chain: list[Link] = [
        TelemetryInterceptor(trusted_proxies=settings.trusted_proxies),
        MetricsInterceptor(metrics=services.metrics),
        AuditInterceptor(audit_log=audit),
        ErrorsInterceptor(),
        AdmissionInterceptor(controller=services.admission),
        AuthenticationInterceptor(
            authenticator=services.authenticator,
            operators=services.operators,
            rate_policy=rate_policy,
        ),
        FingerprintInterceptor(audit_log=audit),
    ]
    if rate_policy is not None:
        chain.append(
            RateLimitInterceptor(
                policy=rate_policy,
                gate=services.gate,
                breaker=services.breaker,
                local=services.local_limiter,
                address_digest=services.address_digest,
                audit_log=audit,
                clock=services.clock,
            )
        )
    chain.append(ValidationInterceptor())
    chain.append(AuthorizationInterceptor(role_of=services.graph_store.role_of, audit_log=audit))
    return chain


def servicers(services: Services) -> dict[str, object]:
    """The servicer of each contract service that has landed, by service name."""
    return {
        "graphgate.v1.AuthService": AuthServicer(services.accounts),
        "graphgate.v1.ApiKeyService": ApiKeyServicer(services.api_keys),
        "graphgate.v1.GraphService": GraphServicer(services.graphs, services.backups),
        "graphgate.v1.UploadService": UploadServicer(services.uploads),
        "graphgate.v1.OperatorService": OperatorServicer(
            services.accounts, services.audit, services.admission
        ),
    }


class GraphgateServer:
    """One grpc.aio server with graphgate's chain, health and reflection."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self._server = aio.server(
            interceptors=[Chain(interceptor_chain(services))],
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
        self._server.add_generic_rpc_handlers(service_handlers(servicers(services)))
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
            credentials = server_credentials(self.services.settings)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigurationError([f"GRAPHGATE_TLS_CERT_FILE: {exc}"]) from exc
        try:
            if credentials is not None:
                self.port = self._server.add_secure_port(address, credentials)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigurationError([f"cannot listen on {address}: address in use?"]) from exc
        if self.port == 0:
            raise ConfigurationError([f"cannot listen on {address}: address in use?"])
        await self._server.start()
        await self.services.admission.start()
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
        await self.services.admission.stop()

    async def wait(self) -> None:
        """Wait until the server has stopped."""
        await self._server.wait_for_termination()
