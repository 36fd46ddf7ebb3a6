"""The REST sidecar: graphgate's gRPC contract as HTTP/JSON for browsers.

Routes, bindings and the OpenAPI document are built at start from the
``google.api.http`` rules and ``graphgate.v1.policy`` options of the
contract; no RPC is named in this package. The web console is served at
``/``, the OpenAPI 3.1 document at ``/openapi.json``, liveness at
``/healthz``.

Deployment note: the gRPC server believes the ``x-forwarded-for`` the
sidecar sends only from its ``TRUSTED_PROXIES``; put the sidecar's address
there (``127.0.0.1/32`` when both run in one process or host), or every
browser is counted as the sidecar for rate limits and brute-force blocks.
"""

from __future__ import annotations

from graphgate.clients.gateway.admission import AdmissionController
from graphgate.clients.gateway.app import create_app
from graphgate.clients.gateway.options import AdmissionThresholds, GatewayOptions
from graphgate.clients.gateway.server import RunningGateway, run_gateway, start_gateway

__all__ = [
    "AdmissionController",
    "AdmissionThresholds",
    "GatewayOptions",
    "RunningGateway",
    "create_app",
    "run_gateway",
    "start_gateway",
]
