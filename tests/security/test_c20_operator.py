"""Operator access and the operator alert (C20), through a real channel."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid

import grpc
import pytest
from grpc import aio

from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings
from graphgate.v1 import auth_pb2, auth_pb2_grpc, operator_pb2, operator_pb2_grpc
from tests.conftest import TEST_OPERATOR_KEY, FakeClock, custom_server
from tests.support import bearer, code_of, new_email, register, wait_for_event

pytestmark = pytest.mark.security
OPERATOR = [("x-api-key", TEST_OPERATOR_KEY)]


async def test_c20_operator_deactivates_and_reactivates_a_user(channel: aio.Channel) -> None:
    """`graphgate users deactivate` (OperatorService) ends a user's sessions at once."""
    account = await register(channel)
    operator = operator_pb2_grpc.OperatorServiceStub(channel)
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    reply = await operator.DeactivateUser(
        operator_pb2.DeactivateUserRequest(email=account.email), metadata=OPERATOR
    )
    assert reply.user.user_id == account.user_id
    with pytest.raises(grpc.RpcError) as caught:
        await auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=bearer(account.token))
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    # A client address of this test's own, so earlier tests' failures don't count.
    here = [("x-forwarded-for", f"192.0.2.{uuid.uuid4().int % 250 + 1}")]
    with pytest.raises(grpc.RpcError) as caught:
        await auth.Login(
            auth_pb2.LoginRequest(email=account.email, password=account.password), metadata=here
        )
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    await operator.ActivateUser(
        operator_pb2.ActivateUserRequest(email=account.email), metadata=OPERATOR
    )
    await asyncio.sleep(1.1)  # the account's 1 s delay after that failure (C6)
    again = await auth.Login(
        auth_pb2.LoginRequest(email=account.email, password=account.password),
        metadata=[("x-forwarded-for", "192.0.2.251")],
    )
    assert again.user.user_id == account.user_id


async def test_c20_operator_sets_a_tier(channel: aio.Channel) -> None:
    account = await register(channel)
    operator = operator_pb2_grpc.OperatorServiceStub(channel)
    reply = await operator.SetUserTier(
        operator_pb2.SetUserTierRequest(email=account.email, tier="pro"), metadata=OPERATOR
    )
    assert reply.user.tier == "pro"
    me = await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=bearer(account.token)
    )
    assert me.user.tier == "pro"
    with pytest.raises(grpc.RpcError) as caught:
        await operator.SetUserTier(
            operator_pb2.SetUserTierRequest(email=account.email, tier="platinum"),
            metadata=OPERATOR,
        )
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT


async def test_c20_user_credentials_are_not_operator_credentials(channel: aio.Channel) -> None:
    """Only the operator key opens OperatorService; a user's token or key does not."""
    account = await register(channel)
    operator = operator_pb2_grpc.OperatorServiceStub(channel)
    for metadata in (bearer(account.token), [("x-api-key", "gg_" + "a" * 64)], []):
        with pytest.raises(grpc.RpcError) as caught:
            await operator.ListSecurityEvents(
                operator_pb2.ListSecurityEventsRequest(), metadata=metadata
            )
        assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED


async def test_c20_repeated_operator_failures_raise_a_critical_alert(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C20: more than 5 failed operator authentications in 5 minutes raise one
    CRITICAL alert event; the events list itself contains no key material."""
    async with (
        custom_server(settings, stores, audit_log, rate_limit_enabled=False) as (
            server,
            services,
        ),
        aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        operator = operator_pb2_grpc.OperatorServiceStub(channel)
        guesses = [f"guess-{uuid.uuid4().hex}" for _ in range(6)]
        for guess in guesses:
            with pytest.raises(grpc.RpcError):
                await operator.ListSecurityEvents(
                    operator_pb2.ListSecurityEventsRequest(), metadata=[("x-api-key", guess)]
                )
        alert = await wait_for_event(audit_log, "operator_alert")
        assert alert["risk_level"] == "CRITICAL"
        assert services.operators.failures_total == 6
        listed = await operator.ListSecurityEvents(
            operator_pb2.ListSecurityEventsRequest(event_type="operator_auth_failure", limit=10),
            metadata=OPERATOR,
        )
    assert len(listed.events) >= 6
    text = " ".join(e.json for e in listed.events)
    assert all(guess not in text for guess in guesses)
    assert json.loads(listed.events[0].json)["event_type"] == "operator_auth_failure"


async def test_c6_operator_unblocks_an_address(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C6: a blocked address is unblocked by the operator before the block ends."""
    clock = FakeClock(start=2_000_000_000.0 + uuid.uuid4().int % 10_000_000)
    address = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    async with (
        custom_server(
            settings,
            stores,
            audit_log,
            clock=clock,
            rate_limit_enabled=False,
            trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
        ) as (server, _),
        aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        forwarded = [("x-forwarded-for", address)]
        wrong = auth_pb2.LoginRequest(email=new_email(), password="Wrong-Password-1!")
        for _ in range(5):
            with pytest.raises(grpc.RpcError):
                await auth.Login(wrong, metadata=forwarded)
            clock.advance(31)
        with pytest.raises(grpc.RpcError) as caught:
            await auth.Login(wrong, metadata=forwarded)
        assert code_of(caught.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
        await operator_pb2_grpc.OperatorServiceStub(channel).UnblockAddress(
            operator_pb2.UnblockAddressRequest(ip_address=address), metadata=OPERATOR
        )
        with pytest.raises(grpc.RpcError) as caught:
            await auth.Login(wrong, metadata=forwarded)
        assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
