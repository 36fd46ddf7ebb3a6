"""C3 refresh with grace and C4 device fingerprints, through a real channel."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc import aio

from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings
from graphgate.v1 import auth_pb2, auth_pb2_grpc
from tests.conftest import custom_server
from tests.support import CHROME_LINUX, bearer, code_of, reason_of, register, wait_for_event

pytestmark = pytest.mark.security


async def _me(channel: aio.Channel, token: str, hints: dict[str, str] | None = None) -> None:
    await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=bearer(token, hints)
    )


def test_c3_default_grace_is_five_seconds(settings: Settings) -> None:
    """C3: the refresh grace defaults to 5 s (the tests below shorten it to 1 s)."""
    assert Settings().refresh_grace_seconds == 5


async def test_c3_refreshed_token_works_within_grace_and_is_refused_after(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C3: the old token keeps working during the grace, then is refused and
    its reuse is audited as possible theft; the new token works."""
    async with custom_server(settings, stores, audit_log, refresh_grace_seconds=1) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            account = await register(channel)
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            refreshed = await stub.Refresh(
                auth_pb2.RefreshRequest(), metadata=bearer(account.token)
            )
            new_token = refreshed.session.access_token
            assert new_token != account.token
            await _me(channel, account.token)  # inside the grace
            await asyncio.sleep(1.2)
            with pytest.raises(grpc.RpcError) as caught:
                await _me(channel, account.token)
            assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
            await wait_for_event(audit_log, "token_reused", user_id=account.user_id)
            await _me(channel, new_token)


async def test_c3_a_token_cannot_be_refreshed_twice(channel: aio.Channel) -> None:
    """C3: refreshing an already refreshed token is refused (a stolen copy
    cannot mint a chain of tokens)."""
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    await stub.Refresh(auth_pb2.RefreshRequest(), metadata=bearer(account.token))
    with pytest.raises(grpc.RpcError) as caught:
        await stub.Refresh(auth_pb2.RefreshRequest(), metadata=bearer(account.token))
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED


async def test_c4_browser_token_is_bound_to_its_browser(
    channel: aio.Channel, audit_log: AuditLog
) -> None:
    """C4: a browser token replayed from another browser or platform is refused
    and audited; the same browser after a version update passes."""
    account = await register(channel, hints=CHROME_LINUX)
    await _me(channel, account.token, CHROME_LINUX)

    updated = dict(CHROME_LINUX)
    updated["user-agent"] = CHROME_LINUX["user-agent"].replace("124.0.6367.91", "125.0.6422.60")
    updated["sec-ch-ua"] = CHROME_LINUX["sec-ch-ua"].replace("124", "125")
    await _me(channel, account.token, updated)

    firefox = {
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
    }
    windows = {**CHROME_LINUX, "sec-ch-ua-platform": '"Windows"'}
    for other in (firefox, windows, {}):
        with pytest.raises(grpc.RpcError) as caught:
            await _me(channel, account.token, other)
        assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
        assert reason_of(caught.value) == "FINGERPRINT_MISMATCH"
    event = await wait_for_event(audit_log, "suspicious_activity", user_id=account.user_id)
    assert event["reason"] == "FINGERPRINT_MISMATCH"


async def test_c4_fingerprint_survives_refresh(channel: aio.Channel) -> None:
    """C4: the refreshed token stays bound to the same browser."""
    account = await register(channel, hints=CHROME_LINUX)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    refreshed = await stub.Refresh(
        auth_pb2.RefreshRequest(), metadata=bearer(account.token, CHROME_LINUX)
    )
    token = refreshed.session.access_token
    await _me(channel, token, CHROME_LINUX)
    with pytest.raises(grpc.RpcError):
        await _me(channel, token, {**CHROME_LINUX, "sec-ch-ua-platform": '"macOS"'})


async def test_c4_sdk_tokens_are_not_fingerprinted(channel: aio.Channel) -> None:
    """C4: a token issued to a non-browser client is not bound to hints."""
    account = await register(channel)
    await _me(channel, account.token, {"user-agent": "graphgate-sdk/1.0"})
    await _me(channel, account.token, {"user-agent": "curl/8.0"})
