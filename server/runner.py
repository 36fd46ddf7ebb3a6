"""Runs one graphgate process: embedded servers, stores, the gRPC server, drain.

``graphgate serve`` calls :func:`serve`. With no ``DATABASE_URL``,
``VALKEY_URL`` or ``S3_ENDPOINT_URL`` the missing parts start embedded under
the data directory and stop with the process (exit, SIGINT or SIGTERM).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from types import FrameType

from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import build_services
from graphgate.server.audit import AuditLog
from graphgate.server.embedded import EmbeddedEndpoints, EmbeddedStores
from graphgate.server.errors import ConfigurationError
from graphgate.server.event_loop import loop_factory
from graphgate.server.lifecycle import open_stores
from graphgate.server.local_secrets import with_local_secrets
from graphgate.server.observability import Metrics, ObservabilityOptions, start_observability
from graphgate.server.secrets import SecretsProvider, store_credentials_follower
from graphgate.server.settings import Settings

_log = logging.getLogger("graphgate.runner")


def check_data_dir(path: Path) -> None:
    """Create the data directory if needed and prove it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigurationError(
            [f"GRAPHGATE_DATA_DIR: {path} is not writable ({exc.strerror or exc})"]
        ) from exc


def resolve(settings: Settings, endpoints: EmbeddedEndpoints) -> Settings:
    """``settings`` with the embedded servers' addresses filled in."""
    resolved = settings
    if endpoints.database_url:
        resolved = dataclasses.replace(resolved, database_url=endpoints.database_url)
    if endpoints.valkey_url:
        resolved = dataclasses.replace(resolved, valkey_url=endpoints.valkey_url)
    if endpoints.s3_endpoint_url:
        resolved = dataclasses.replace(
            resolved,
            s3_endpoint_url=endpoints.s3_endpoint_url,
            s3_access_key_id=endpoints.s3_access_key,
            s3_secret_access_key=endpoints.s3_secret_key,
        )
    return resolved


@contextmanager
def embedded_stores(settings: Settings, *, postgres_only: bool = False) -> Iterator[Settings]:
    """Start the embedded servers ``settings`` asks for; yield resolved settings."""
    wanted = {
        "postgres": settings.embedded_postgres,
        "valkey": settings.embedded_valkey and not postgres_only,
        "s3": settings.embedded_s3 and not postgres_only,
    }
    with EmbeddedStores(settings.data_dir / "embedded", **wanted) as stores:
        endpoints = (
            stores.start()
            if any(wanted.values())
            else EmbeddedEndpoints(None, None, None, None, None)
        )
        yield resolve(settings, endpoints)


async def run_service(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    provider: SecretsProvider | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then drain. ``settings`` must be resolved.

    With a secrets ``provider`` (AWS Secrets Manager), rotated JWT and
    operator keys and store passwords are followed without a restart.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    audit = AuditLog(enabled=settings.security_audit_enabled)
    observability = start_observability(ObservabilityOptions.from_settings(settings))
    try:
        await _serve_until_stopped(settings, audit, observability.metrics, stop, ready, provider)
    finally:
        # After the drain, so the last calls are still counted and exported.
        observability.stop()
    _log.info("stopped")


async def _serve_until_stopped(
    settings: Settings,
    audit: AuditLog,
    metrics: Metrics,
    stop: asyncio.Event,
    ready: asyncio.Event | None,
    provider: SecretsProvider | None,
) -> None:
    async with open_stores(settings, create_bucket=settings.s3_endpoint_url is not None) as stores:
        services = build_services(
            settings,
            stores,
            audit,
            metrics=metrics,
            jwt_keys=provider.current_jwt_keys if provider else None,
            operator_keys=provider.current_operator_keys if provider else None,
        )
        refresher = None
        if provider is not None:
            provider.on_change(
                store_credentials_follower(
                    postgres=stores.postgres, valkey=stores.valkey_credentials, started=settings
                )
            )
            refresher = asyncio.create_task(provider.run(), name="secrets-refresh")
        server = GraphgateServer(services)
        await server.start(settings.grpc_listen)
        if ready is not None:
            ready.set()
        await stop.wait()
        _log.info("draining (grace %.1fs)", settings.shutdown_grace_seconds)
        await server.drain(
            pause=settings.drain_pause_seconds, grace=settings.shutdown_grace_seconds
        )
        await services.aclose()
        if refresher is not None:
            refresher.cancel()


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(
    settings: Settings,
    *,
    provider: SecretsProvider | None = None,
    beside: Callable[[Settings], AbstractContextManager[object]] | None = None,
) -> None:
    """Run graphgate in this process until it is told to stop.

    ``beside`` runs something next to the gRPC server (the REST sidecar) once
    the embedded servers' addresses are known, and stops it after the server.
    """
    check_data_dir(settings.data_dir)
    # Until the event loop takes over, turn SIGTERM into an exception so the
    # embedded servers started so far are stopped on the way out.
    signal.signal(signal.SIGTERM, _raise_exit)
    settings = with_local_secrets(settings)
    with (
        embedded_stores(settings) as resolved,
        beside(resolved) if beside is not None else nullcontext(),
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        runner.run(run_service(resolved, provider=provider))
    _log.info("graphgate exited (pid %d)", os.getpid())
