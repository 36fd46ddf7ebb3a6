"""``client.keys``: the caller's API keys (ApiKeyService).

Managing keys needs a signed-in session (email and password, or ``graphgate
login``): a key cannot mint or rotate keys. Every call here writes except
:meth:`Keys.list`, so only that one is retried.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from graphgate.clients.contract import rpc
from graphgate.clients.models import ApiKey, CreatedApiKey
from graphgate.clients.transport import AsyncTransport, Op, Transport
from graphgate.v1 import keys_pb2


def _created(reply: keys_pb2.CreateApiKeyResponse | keys_pb2.RotateApiKeyResponse) -> CreatedApiKey:
    return CreatedApiKey(api_key=reply.api_key, key=ApiKey.from_proto(reply.key))


def _create(name: str, description: str, expires_at: datetime | None) -> Op[CreatedApiKey]:
    request = keys_pb2.CreateApiKeyRequest(name=name, description=description)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(expires_at)
        request.expires_at.CopyFrom(stamp)
    return Op(rpc("ApiKeyService", "CreateApiKey"), request, _created)


def _list() -> Op[list[ApiKey]]:
    return Op(
        rpc("ApiKeyService", "ListApiKeys"),
        keys_pb2.ListApiKeysRequest(),
        lambda r: [ApiKey.from_proto(k) for k in r.keys],
    )


def _revoke(api_key_id: str) -> Op[None]:
    return Op(
        rpc("ApiKeyService", "RevokeApiKey"),
        keys_pb2.RevokeApiKeyRequest(api_key_id=api_key_id),
        lambda _: None,
    )


def _rotate(api_key_id: str) -> Op[CreatedApiKey]:
    return Op(
        rpc("ApiKeyService", "RotateApiKey"),
        keys_pb2.RotateApiKeyRequest(api_key_id=api_key_id),
        _created,
    )


class Keys:
    """API keys of the signed-in user."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self, name: str, *, description: str = "", expires_at: datetime | None = None
    ) -> CreatedApiKey:
        """Make a key; ``.api_key`` is its secret, returned this once only."""
        return self._t.run(_create(name, description, expires_at))

    def list(self) -> list[ApiKey]:
        """The caller's keys, newest first (never their secrets)."""
        return self._t.run(_list())

    def revoke(self, api_key_id: str) -> None:
        """End a key at once, on every server."""
        self._t.run(_revoke(api_key_id))

    def rotate(self, api_key_id: str) -> CreatedApiKey:
        """Replace a key's secret; the old secret stops working at once."""
        return self._t.run(_rotate(api_key_id))


class AsyncKeys:
    """API keys of the signed-in user (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(
        self, name: str, *, description: str = "", expires_at: datetime | None = None
    ) -> CreatedApiKey:
        """Make a key; ``.api_key`` is its secret, returned this once only."""
        return await self._t.run(_create(name, description, expires_at))

    async def list(self) -> list[ApiKey]:
        """The caller's keys, newest first (never their secrets)."""
        return await self._t.run(_list())

    async def revoke(self, api_key_id: str) -> None:
        """End a key at once, on every server."""
        await self._t.run(_revoke(api_key_id))

    async def rotate(self, api_key_id: str) -> CreatedApiKey:
        """Replace a key's secret; the old secret stops working at once."""
        return await self._t.run(_rotate(api_key_id))
