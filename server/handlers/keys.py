"""ApiKeyService servicer."""

from __future__ import annotations

from datetime import UTC as _UTC
from typing import Any

from graphgate.server.context import current_principal
from graphgate.server.handlers import convert
from graphgate.server.services.api_keys import ApiKeyService
from graphgate.v1 import keys_pb2


class ApiKeyServicer:
    """Serves graphgate.v1.ApiKeyService."""

    def __init__(self, keys: ApiKeyService) -> None:
        self._keys = keys

    async def CreateApiKey(
        self, request: keys_pb2.CreateApiKeyRequest, context: Any
    ) -> keys_pb2.CreateApiKeyResponse:
        new = await self._keys.create(
            current_principal(),
            name=request.name,
            description=request.description,
            expires_at=request.expires_at.ToDatetime(tzinfo=_UTC)
            if request.HasField("expires_at")
            else None,
        )
        return keys_pb2.CreateApiKeyResponse(api_key=new.secret, key=convert.api_key(new.record))

    async def ListApiKeys(
        self, request: keys_pb2.ListApiKeysRequest, context: Any
    ) -> keys_pb2.ListApiKeysResponse:
        records = await self._keys.list_keys(current_principal())
        return keys_pb2.ListApiKeysResponse(keys=[convert.api_key(r) for r in records])

    async def RevokeApiKey(
        self, request: keys_pb2.RevokeApiKeyRequest, context: Any
    ) -> keys_pb2.RevokeApiKeyResponse:
        await self._keys.revoke(current_principal(), request.api_key_id)
        return keys_pb2.RevokeApiKeyResponse()

    async def RotateApiKey(
        self, request: keys_pb2.RotateApiKeyRequest, context: Any
    ) -> keys_pb2.RotateApiKeyResponse:
        new = await self._keys.rotate(current_principal(), request.api_key_id)
        return keys_pb2.RotateApiKeyResponse(api_key=new.secret, key=convert.api_key(new.record))
