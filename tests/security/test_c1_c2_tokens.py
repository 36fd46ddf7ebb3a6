"""C1 access tokens and C2 revocation, through a real channel."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import grpc
import jwt
import pytest
from grpc import aio

from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import Services
from graphgate.server.audit import AuditLog
from graphgate.server.embedded import EmbeddedStores
from graphgate.server.lifecycle import Stores
from graphgate.server.services.tokens import key_id
from graphgate.server.settings import Settings
from graphgate.v1 import auth_pb2, auth_pb2_grpc, graph_pb2, graph_pb2_grpc
from tests.conftest import TEST_JWT_SECRET, custom_server
from tests.support import Account, bearer, code_of, reason_of, register, wait_for_event

pytestmark = pytest.mark.security


async def _me(channel: aio.Channel, token: str) -> auth_pb2.GetCurrentUserResponse:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    reply: auth_pb2.GetCurrentUserResponse = await stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=bearer(token)
    )
    return reply


async def _refused(channel: aio.Channel, token: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        await _me(channel, token)
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "authentication required"
    return caught.value


def _claims(account: Account) -> dict[str, object]:
    payload = account.token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def _forge(claims: dict[str, object], *, secret: str = TEST_JWT_SECRET, **header: str) -> str:
    headers = {"kid": key_id(TEST_JWT_SECRET), **header}
    return jwt.encode(claims, secret, algorithm=header.get("alg", "HS256"), headers=headers)


async def test_c1_a_valid_token_identifies_its_user(channel: aio.Channel) -> None:
    """C1: the session from sign-up works and names its user."""
    account = await register(channel)
    reply = await _me(channel, account.token)
    assert reply.user.user_id == account.user_id
    assert reply.user.email == account.email


async def test_c1_no_credentials_is_unauthenticated(channel: aio.Channel) -> None:
    """C1: every non-public RPC refuses a caller without credentials."""
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await stub.ListGraphs(graph_pb2.ListGraphsRequest())
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda c: jwt.encode(
                c, None, algorithm="none", headers={"kid": key_id(TEST_JWT_SECRET)}
            ),
            id="alg-none",
        ),
        pytest.param(lambda c: _forge(c, alg="HS512"), id="another-algorithm"),
        pytest.param(lambda c: _forge(c, secret="x" * 40), id="another-key"),
        pytest.param(lambda c: _forge({**c, "iss": "evil"}), id="wrong-issuer"),
        pytest.param(lambda c: _forge({**c, "aud": "other-api"}), id="wrong-audience"),
        pytest.param(lambda c: _forge({**c, "exp": time.time() - 1}), id="expired"),
        pytest.param(
            lambda c: _forge({k: v for k, v in c.items() if k != "jti"}), id="missing-jti"
        ),
        pytest.param(lambda c: _forge(c)[:-3] + "AAA", id="tampered-signature"),
        pytest.param(lambda c: "not.a.jwt", id="garbage"),
    ],
)
async def test_c1_bad_tokens_are_refused(
    channel: aio.Channel, audit_log: AuditLog, forge: Callable[[dict[str, object]], str]
) -> None:
    """C1: signature, algorithm, iss, aud, exp and required claims are all checked."""
    account = await register(channel)
    error = await _refused(channel, forge(_claims(account)))
    assert reason_of(error) in {"TOKEN_INVALID", "TOKEN_EXPIRED"}


async def test_c1_malformed_authorization_is_not_retried_as_api_key(
    channel: aio.Channel,
) -> None:
    """API.md: a bad bearer next to an API key is refused, no fallback."""
    account = await register(channel)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(),
            metadata=[("authorization", "Bearer broken"), ("x-api-key", "gg_" + "0" * 64)],
        )
    assert code_of(caught.value) == grpc.StatusCode.UNAUTHENTICATED
    await _me(channel, account.token)


async def test_c2_logout_revokes_on_every_replica(
    channel: aio.Channel, second_server: GraphgateServer, audit_log: AuditLog
) -> None:
    """C2: a revoked token is refused by another server sharing Valkey."""
    account = await register(channel)
    async with aio.insecure_channel(f"127.0.0.1:{second_server.port}") as other:
        await _me(other, account.token)
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer(account.token))
        error = await _refused(other, account.token)
    assert reason_of(error) == "TOKEN_REVOKED"
    await wait_for_event(audit_log, "token_revoked", user_id=account.user_id)


async def test_c2_password_change_ends_earlier_sessions_everywhere(
    channel: aio.Channel, second_server: GraphgateServer
) -> None:
    """C2: tokens issued before a password change are refused; the new one works."""
    account = await register(channel)
    other_session = await auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(email=account.email, password=account.password)
    )
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    changed = await stub.ChangePassword(
        auth_pb2.ChangePasswordRequest(
            current_password=account.password, new_password=account.password + "x2"
        ),
        metadata=bearer(account.token),
    )
    async with aio.insecure_channel(f"127.0.0.1:{second_server.port}") as other:
        await _refused(other, account.token)
        await _refused(other, other_session.session.access_token)
        reply = await _me(other, changed.session.access_token)
    assert reply.user.user_id == account.user_id


async def test_c2_deactivated_user_is_refused_at_once(
    channel: aio.Channel, second_server: GraphgateServer, services: Services
) -> None:
    """C2: deactivating a user (the operator command's service) ends its sessions
    on every replica; reactivation does not revive them."""
    account = await register(channel)
    async with aio.insecure_channel(f"127.0.0.1:{second_server.port}") as other:
        await _me(other, account.token)
        await services.accounts.set_active(account.email, False)
        error = await _refused(other, account.token)
        assert reason_of(error) == "USER_INACTIVE"
        await services.accounts.set_active(account.email, True)
        await _refused(other, account.token)


@pytest.mark.slow
async def test_c2_revocation_fails_closed_when_valkey_is_down(
    settings: Settings,
    stores: Stores,
    audit_log: AuditLog,
    embedded: EmbeddedStores,
) -> None:
    """C2/C6: with Valkey stopped, bearer tokens are refused (fail closed) while
    sign-in still answers and failed sign-ins are still counted per process."""
    async with custom_server(settings, stores, audit_log, rate_limit_enabled=False) as (
        server,
        services,
    ):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            account = await register(channel)
            await _me(channel, account.token)
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            embedded.stop_valkey()
            try:
                error = await _refused(channel, account.token)
                assert reason_of(error) == "REVOCATION_UNAVAILABLE"
                login = await stub.Login(
                    auth_pb2.LoginRequest(email=account.email, password=account.password)
                )
                assert login.user.user_id == account.user_id
                for _ in range(2):
                    with pytest.raises(grpc.RpcError):
                        await stub.Login(
                            auth_pb2.LoginRequest(email=account.email, password="Wrong-pass-123!")
                        )
                # The per-process tracker counted: the next attempt must wait.
                with pytest.raises(grpc.RpcError) as caught:
                    await stub.Login(
                        auth_pb2.LoginRequest(email=account.email, password=account.password)
                    )
                assert code_of(caught.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
            finally:
                embedded.start_valkey()
            assert services.breaker.state.value in {"open", "closed"}
