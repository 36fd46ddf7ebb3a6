"""C5 API keys, through a real channel and two replicas."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc import aio

from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import Services
from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings
from graphgate.v1 import auth_pb2, auth_pb2_grpc, keys_pb2, keys_pb2_grpc
from tests.conftest import custom_server
from tests.support import bearer, code_of, reason_of, register

pytestmark = pytest.mark.security


async def _me_with_key(channel: aio.Channel, key: str) -> str:
    reply = await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=[("x-api-key", key)]
    )
    return str(reply.user.user_id)


async def _refused(channel: aio.Channel, key: str) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        await _me_with_key(channel, key)
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    return reason_of(caught.value)


async def _create(
    channel: aio.Channel, token: str, **fields: object
) -> keys_pb2.CreateApiKeyResponse:
    stub = keys_pb2_grpc.ApiKeyServiceStub(channel)
    reply: keys_pb2.CreateApiKeyResponse = await stub.CreateApiKey(
        keys_pb2.CreateApiKeyRequest(name="ci", **fields), metadata=bearer(token)
    )
    return reply


async def test_c5_key_is_shown_once_and_stored_only_as_bcrypt(
    channel: aio.Channel, stores: Stores
) -> None:
    """C5: CSPRNG key with a fixed prefix and 64 hex characters, returned once;
    the database holds a bcrypt hash and a lookup id, never the key."""
    account = await register(channel)
    created = await _create(channel, account.token)
    assert re.fullmatch(r"gg_[0-9a-f]{64}", created.api_key)
    assert await _me_with_key(channel, created.api_key) == account.user_id
    listed = await keys_pb2_grpc.ApiKeyServiceStub(channel).ListApiKeys(
        keys_pb2.ListApiKeysRequest(), metadata=bearer(account.token)
    )
    assert [k.api_key_id for k in listed.keys] == [created.key.api_key_id]
    assert created.api_key not in str(listed)
    assert listed.keys[0].display_prefix == created.api_key[:11]
    row = await stores.postgres.fetchrow(
        "SELECT * FROM api_keys WHERE api_key_id = $1", uuid.UUID(created.key.api_key_id)
    )
    assert row is not None
    stored = " ".join(str(v) for v in row.values())
    assert created.api_key not in stored
    assert created.api_key[19:] not in stored  # the secret part appears nowhere
    assert row["secret_hash"].startswith("$2b$")


async def test_c5_default_cost_is_bcrypt_12(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C5: with default settings the stored hash is bcrypt cost 12."""
    async with custom_server(settings, stores, audit_log, api_key_bcrypt_rounds=12) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            account = await register(channel)
            created = await _create(channel, account.token)
    assert Settings().api_key_bcrypt_rounds == 12
    row = await stores.postgres.fetchrow(
        "SELECT secret_hash FROM api_keys WHERE api_key_id = $1",
        uuid.UUID(created.key.api_key_id),
    )
    assert row is not None
    assert row["secret_hash"].startswith("$2b$12$")


async def test_c5_revoked_and_rotated_keys_end_at_once_on_every_replica(
    channel: aio.Channel, second_server: GraphgateServer
) -> None:
    """C5: revoke and rotate end the old key on another server at once, even
    though that server had just cached it as verified."""
    account = await register(channel)
    stub = keys_pb2_grpc.ApiKeyServiceStub(channel)
    first = await _create(channel, account.token)
    second = await _create(channel, account.token)
    async with aio.insecure_channel(f"127.0.0.1:{second_server.port}") as other:
        await _me_with_key(other, first.api_key)
        await _me_with_key(other, second.api_key)
        await stub.RevokeApiKey(
            keys_pb2.RevokeApiKeyRequest(api_key_id=first.key.api_key_id),
            metadata=bearer(account.token),
        )
        assert await _refused(other, first.api_key) == "API_KEY_INVALID"
        rotated = await stub.RotateApiKey(
            keys_pb2.RotateApiKeyRequest(api_key_id=second.key.api_key_id),
            metadata=bearer(account.token),
        )
        await _refused(other, second.api_key)
        assert await _me_with_key(other, rotated.api_key) == account.user_id
    assert rotated.key.name == second.key.name


async def test_c5_expiry_is_honoured(channel: aio.Channel, stores: Stores) -> None:
    """C5: an expired key is refused, from the cache and from the database."""
    account = await register(channel)
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = await _create(
        channel, account.token, expires_at=timestamp_pb2.Timestamp(seconds=int(soon.timestamp()))
    )
    await _me_with_key(channel, created.api_key)
    await stores.postgres.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE api_key_id = $1",
        uuid.UUID(created.key.api_key_id),
    )
    await stores.valkey.delete(f"gg:{{k.{created.api_key[3:19]}}}:cache")
    assert await _refused(channel, created.api_key) == "API_KEY_EXPIRED"


async def test_c5_past_expiry_is_invalid_input(channel: aio.Channel) -> None:
    """C14: a key cannot be created already expired."""
    account = await register(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await _create(channel, account.token, expires_at=timestamp_pb2.Timestamp(seconds=1))
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT


async def test_c5_deactivated_users_keys_are_refused(
    channel: aio.Channel, services: Services, second_server: GraphgateServer
) -> None:
    """C5: deactivating the owner ends its keys at once on every replica."""
    account = await register(channel)
    created = await _create(channel, account.token)
    async with aio.insecure_channel(f"127.0.0.1:{second_server.port}") as other:
        await _me_with_key(other, created.api_key)
        await services.accounts.set_active(account.email, False)
        await _refused(other, created.api_key)
        await services.accounts.set_active(account.email, True)
        assert await _me_with_key(other, created.api_key) == account.user_id


async def test_c5_random_keys_cost_no_bcrypt(channel: aio.Channel, services: Services) -> None:
    """C5: unknown keys are refused without one bcrypt per stored key (none at
    all: the lookup id finds nothing), and a wrong secret for a cached key is
    refused by digest comparison, without bcrypt."""
    account = await register(channel)
    for _ in range(3):
        await _create(channel, account.token)
    known = await _create(channel, account.token)
    await _me_with_key(channel, known.api_key)  # now cached
    before = services.key_hasher.calls
    for _ in range(20):
        await _refused(channel, "gg_" + secrets.token_hex(32))
    wrong_secret = known.api_key[:19] + secrets.token_hex(24)
    await _refused(channel, wrong_secret)
    for malformed in ("gg_123", "x" * 67, "gg_" + "G" * 64):
        await _refused(channel, malformed)
    assert services.key_hasher.calls == before


async def test_c5_keys_cannot_manage_keys(channel: aio.Channel) -> None:
    """C5: a leaked key cannot mint more keys: key management needs a session."""
    account = await register(channel)
    created = await _create(channel, account.token)
    with pytest.raises(grpc.RpcError) as caught:
        await keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
            keys_pb2.CreateApiKeyRequest(name="more"), metadata=[("x-api-key", created.api_key)]
        )
    assert code_of(caught.value) == grpc.StatusCode.PERMISSION_DENIED


async def test_c9_another_users_key_cannot_be_revoked(channel: aio.Channel) -> None:
    """C9: revoking someone else's key answers exactly like an unknown key."""
    owner = await register(channel)
    stranger = await register(channel)
    created = await _create(channel, owner.token)
    stub = keys_pb2_grpc.ApiKeyServiceStub(channel)
    for key_id in (created.key.api_key_id, str(uuid.uuid4())):
        with pytest.raises(grpc.RpcError) as caught:
            await stub.RevokeApiKey(
                keys_pb2.RevokeApiKeyRequest(api_key_id=key_id), metadata=bearer(stranger.token)
            )
        assert code_of(caught.value) == grpc.StatusCode.NOT_FOUND
    assert await _me_with_key(channel, created.api_key) == owner.user_id
