"""Opening and closing the stores a server needs.

:func:`open_stores` connects to PostgreSQL (and applies migrations), Valkey
and S3 from resolved settings (embedded servers already started, URLs known),
starts the graph workers, and closes them all on exit, also when a later one
fails to open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import boto3
import botocore.config
import botocore.exceptions
import valkey.asyncio as valkey_asyncio
import valkey.exceptions

from graphgate.server.engine.pool import MIB, GraphEngine
from graphgate.server.errors import StoreUnavailable
from graphgate.server.secrets.follow import ValkeyCredentials, valkey_url_and_credentials
from graphgate.server.settings import Settings
from graphgate.server.stores.postgres import connect_pool, migrate
from graphgate.server.tls import postgres_ssl_context, valkey_tls_kwargs

_log = logging.getLogger("graphgate.lifecycle")

#: Valkey calls sit on the hot path: fail fast so the caller can fail closed or
#: fall back instead of hanging.
VALKEY_TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Stores:
    """Open connections to every store."""

    postgres: asyncpg.Pool
    valkey: valkey_asyncio.Valkey
    s3: Any
    s3_bucket: str
    engine: GraphEngine
    #: Follows the Valkey password as it rotates (C13).
    valkey_credentials: ValkeyCredentials


def valkey_client(
    url: str, *, credentials: ValkeyCredentials | None = None, **tls: Any
) -> valkey_asyncio.Valkey:
    """A Valkey client with the short timeouts the hot path needs (TLS kwargs
    from :func:`graphgate.server.tls.valkey_tls_kwargs`)."""
    client: valkey_asyncio.Valkey = valkey_asyncio.Valkey.from_url(
        url,
        socket_timeout=VALKEY_TIMEOUT_SECONDS,
        socket_connect_timeout=VALKEY_TIMEOUT_SECONDS,
        retry_on_timeout=False,
        credential_provider=credentials,
        **tls,
    )
    return client


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for the configured endpoint (SigV4, path-style for local)."""
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region or "us-east-1",
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=botocore.config.Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


async def _ensure_bucket(s3: Any, bucket: str) -> None:
    def ensure() -> None:
        try:
            s3.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError:
            s3.create_bucket(Bucket=bucket)

    try:
        await asyncio.to_thread(ensure)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StoreUnavailable(detail=f"S3 bucket {bucket}: {exc}") from exc


@asynccontextmanager
async def open_stores(settings: Settings, *, create_bucket: bool) -> AsyncIterator[Stores]:
    """Connect every store; migrations are applied before this yields."""
    if settings.database_url is None or settings.valkey_url is None:
        raise StoreUnavailable(detail="store URLs must be resolved before opening stores")
    async with AsyncExitStack() as stack:
        ssl = postgres_ssl_context(settings)
        await migrate(settings.database_url, ssl=ssl)
        pool = await connect_pool(settings.database_url, ssl=ssl)
        stack.push_async_callback(pool.close)
        valkey_url, credentials = valkey_url_and_credentials(settings.valkey_url)
        client = valkey_client(valkey_url, credentials=credentials, **valkey_tls_kwargs(settings))
        stack.push_async_callback(client.aclose)
        try:
            await client.ping()
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey: {exc}") from exc
        s3 = s3_client(settings)
        if create_bucket:
            await _ensure_bucket(s3, settings.s3_bucket)
        engine = GraphEngine(
            settings.data_dir,
            buffer_pool_bytes=settings.graph_buffer_pool_mib * MIB,
            max_worker_rss_bytes=settings.graph_worker_rss_limit_mib * MIB,
        )
        await engine.start()
        stack.push_async_callback(engine.close)
        _log.info(
            "stores open: PostgreSQL, Valkey, S3 bucket %s, graph workers", settings.s3_bucket
        )
        yield Stores(
            postgres=pool,
            valkey=client,
            s3=s3,
            s3_bucket=settings.s3_bucket,
            engine=engine,
            valkey_credentials=credentials,
        )
