"""Shared fixtures: real embedded stores and real graphgate servers.

The embedded PostgreSQL, Valkey and SeaweedFS start once per test session
under a temporary data directory; each server fixture runs the production
chain on a loopback port and is reached through a real gRPC channel.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import Services, build_services
from graphgate.server.audit import AuditLog
from graphgate.server.embedded import EmbeddedEndpoints, EmbeddedStores
from graphgate.server.lifecycle import Stores, open_stores
from graphgate.server.runner import resolve
from graphgate.server.services.admission import PressureSource
from graphgate.server.settings import Settings

#: The operator key of the test servers.
TEST_OPERATOR_KEY = "test-operator-key-" + "fedcba9876543210" * 2
#: A test-only signing key (never a production value: C21 refuses it there).
TEST_JWT_SECRET = "test-only-jwt-signing-key-" + "0123456789abcdef" * 4


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphgate-data")


@pytest.fixture(scope="session")
def embedded(data_dir: Path) -> Iterator[EmbeddedStores]:
    stores = EmbeddedStores(data_dir / "embedded", postgres=True, valkey=True, s3=True)
    try:
        yield stores
    finally:
        stores.stop()


@pytest.fixture(scope="session")
def endpoints(embedded: EmbeddedStores) -> EmbeddedEndpoints:
    return embedded.start()


@pytest.fixture(scope="session")
def settings(endpoints: EmbeddedEndpoints, data_dir: Path) -> Settings:
    base = Settings(
        data_dir=data_dir,
        grpc_listen="127.0.0.1:0",
        jwt_secret_key=TEST_JWT_SECRET,
        operator_api_key=TEST_OPERATOR_KEY,
        # Tests may act as their own proxy (x-forwarded-for) to get a client
        # address of their own; tests of untrusted peers build their own server.
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
        # Cost 4 keeps the suite fast; tests of the default cost build their own.
        bcrypt_rounds=4,
        api_key_bcrypt_rounds=4,
        drain_pause_seconds=0.0,
        # Every test signs up from 127.0.0.1; the limits themselves are tested
        # on servers of their own with the defaults.
        rate_limits="register=1000000/3600,login=1000000/300,auth_other=1000000/60",
        shutdown_grace_seconds=2.0,
    )
    return resolve(base, endpoints)


@pytest.fixture(scope="session")
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    async with open_stores(settings, create_bucket=True) as opened:
        yield opened


@pytest.fixture(scope="session")
def audit_log() -> AuditLog:
    return AuditLog(enabled=True)


@pytest.fixture(scope="session")
async def services(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> AsyncIterator[Services]:
    built = build_services(settings, stores, audit_log)
    yield built
    await built.aclose()


async def start_server(services: Services) -> GraphgateServer:
    """A server with the production chain on a free loopback port."""
    instance = GraphgateServer(services)
    await instance.start("127.0.0.1:0")
    return instance


@pytest.fixture(scope="session")
async def server(services: Services) -> AsyncIterator[GraphgateServer]:
    instance = await start_server(services)
    yield instance
    await instance.drain(pause=0, grace=1)


@pytest.fixture
async def channel(server: GraphgateServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


def with_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with some fields changed."""
    return dataclasses.replace(settings, **changes)


class FakeClock:
    """Unix time that only moves when a test says so."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def custom_server(
    settings: Settings,
    stores: Stores,
    audit_log: AuditLog,
    *,
    clock: Callable[[], float] = time.time,
    pressure: PressureSource | None = None,
    jwt_keys: Callable[[], Sequence[str]] | None = None,
    **changes: Any,
) -> AsyncIterator[tuple[GraphgateServer, Services]]:
    """A server with changed settings (clock, pressure source, key source) on the
    shared stores."""
    built = build_services(
        dataclasses.replace(settings, **changes),
        stores,
        audit_log,
        clock=clock,
        pressure=pressure,
        jwt_keys=jwt_keys,
    )
    instance = await start_server(built)
    try:
        yield instance, built
    finally:
        await instance.drain(pause=0, grace=1)
        await built.aclose()


@pytest.fixture
async def second_server(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> AsyncIterator[GraphgateServer]:
    """Another replica: its own process state, the same PostgreSQL and Valkey."""
    built = build_services(settings, stores, audit_log)
    instance = await start_server(built)
    yield instance
    await instance.drain(pause=0, grace=1)
    await built.aclose()


def status_of(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call (typed helper for tests)."""
    code = error.code()  # type: ignore[attr-defined]
    assert isinstance(code, grpc.StatusCode)
    return code
