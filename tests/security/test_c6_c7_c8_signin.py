"""C6 brute-force protection, C7 CAPTCHA and C8 passwords, through a real channel."""

from __future__ import annotations

import ipaddress
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import grpc
import pytest
from grpc import aio

from graphgate.server.assembly import Services
from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings
from graphgate.v1 import auth_pb2, auth_pb2_grpc
from tests.conftest import FakeClock, custom_server
from tests.support import code_of, new_email, reason_of, register, strong_password

pytestmark = pytest.mark.security

LADDER = [1, 2, 5, 10]
WRONG = "Wrong-Password-123!"


def _retry_after(error: grpc.RpcError) -> int:
    trailing = dict(error.trailing_metadata() or ())
    return int(trailing["retry-after"])


async def _login(
    stub: auth_pb2_grpc.AuthServiceStub,
    email: str,
    password: str,
    metadata: list[tuple[str, str]] | None = None,
) -> grpc.RpcError | None:
    try:
        await stub.Login(auth_pb2.LoginRequest(email=email, password=password), metadata=metadata)
    except grpc.RpcError as error:
        return error
    return None


@dataclass
class Guarded:
    """A server with a movable brute-force clock, and a channel to it."""

    channel: aio.Channel
    stub: auth_pb2_grpc.AuthServiceStub
    clock: FakeClock
    services: Services


@pytest.fixture
async def guarded(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> AsyncIterator[Guarded]:
    """A server whose brute-force clock the test moves; rate limits off so
    only the guard answers."""
    clock = FakeClock(start=1_900_000_000.0 + uuid.uuid4().int % 10_000_000)
    async with custom_server(
        settings, stores, audit_log, clock=clock, rate_limit_enabled=False, trusted_proxies=()
    ) as (server, services):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            # Each test starts, and leaves, a clean record for 127.0.0.1.
            await _forget_failures(stores)
            yield Guarded(channel, auth_pb2_grpc.AuthServiceStub(channel), clock, services)
            await _forget_failures(stores)


async def _forget_failures(stores: Stores) -> None:
    stale = [k async for k in stores.valkey.scan_iter("gg:bf:*")]
    if stale:
        await stores.valkey.delete(*stale)


async def test_c6_delays_and_blocks_at_exact_thresholds(
    guarded: Guarded,
) -> None:
    """C6: after each failure the next attempt waits 1 s, 2 s, 5 s, 10 s; the 5th
    failure blocks 15 min (MEDIUM), the 10th 1 h (HIGH), the 20th 24 h
    (CRITICAL); refusals are RESOURCE_EXHAUSTED with retry-after and the level;
    blocks expire by themselves."""
    stub, clock = guarded.stub, guarded.clock
    for n in range(1, 21):
        error = await _login(stub, new_email(), WRONG)
        assert error is not None
        assert code_of(error) == grpc.StatusCode.UNAUTHENTICATED, n
        assert error.details() == "invalid email or password"
        refused = await _login(stub, new_email(), WRONG)
        assert refused is not None
        assert code_of(refused) == grpc.StatusCode.RESOURCE_EXHAUSTED, n
        wait = _retry_after(refused)
        if n < 5:
            assert wait == LADDER[n - 1], n
        elif n < 10:
            assert wait == 15 * 60, n
        elif n < 20:
            assert wait == 3600, n
        else:
            assert wait == 24 * 3600
        trailing = dict(refused.trailing_metadata() or ())
        assert "grpc-status-details-bin" in trailing
        clock.advance(wait - 0.5)
        still = await _login(stub, new_email(), WRONG)
        assert still is not None
        assert code_of(still) == grpc.StatusCode.RESOURCE_EXHAUSTED
        clock.advance(0.5)
    # The 24 h block has expired by itself: the next attempt is judged again.
    error = await _login(stub, new_email(), WRONG)
    assert error is not None
    assert code_of(error) == grpc.StatusCode.UNAUTHENTICATED


async def test_c6_unknown_email_and_wrong_password_answer_alike(
    guarded: Guarded,
) -> None:
    """C6: the same status and message for an unknown email and a wrong password,
    and both cost one bcrypt (equal timing by construction)."""
    stub, clock, services = guarded.stub, guarded.clock, guarded.services
    account = await register(guarded.channel)
    answers = []
    for email in (account.email, new_email()):
        before = services.password_hasher.calls
        error = await _login(stub, email, WRONG)
        assert error is not None
        answers.append((code_of(error), error.details(), reason_of(error)))
        assert services.password_hasher.calls == before + 1
        clock.advance(60)
    assert answers[0] == answers[1]


async def test_c6_spoofed_forwarded_for_from_untrusted_peer_changes_nothing(
    guarded: Guarded,
) -> None:
    """C6: X-Forwarded-For is ignored unless the peer is a trusted proxy."""
    stub = guarded.stub
    await _login(stub, new_email(), WRONG, [("x-forwarded-for", "198.51.100.1")])
    refused = await _login(stub, new_email(), WRONG, [("x-forwarded-for", "198.51.100.2")])
    assert refused is not None
    assert code_of(refused) == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_c6_forwarded_for_from_a_trusted_proxy_is_believed(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C6: behind a configured proxy, each client address has its own count."""
    async with custom_server(
        settings,
        stores,
        audit_log,
        rate_limit_enabled=False,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
    ) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            first = f"198.51.100.{uuid.uuid4().int % 200 + 1}"
            await _login(stub, new_email(), WRONG, [("x-forwarded-for", first)])
            refused = await _login(stub, new_email(), WRONG, [("x-forwarded-for", first)])
            assert refused is not None
            assert code_of(refused) == grpc.StatusCode.RESOURCE_EXHAUSTED
            other = await _login(stub, new_email(), WRONG, [("x-forwarded-for", "203.0.113.99")])
            assert other is not None
            assert code_of(other) == grpc.StatusCode.UNAUTHENTICATED


# --- C7 CAPTCHA ----------------------------------------------------------


class _Siteverify(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        token = form.get("response", [""])[0]
        if form.get("secret", [""])[0] != "turnstile-test-secret":
            body = {"success": False, "error-codes": ["invalid-input-secret"]}
        elif token == "pass":
            body = {"success": True, "error-codes": []}
        elif token == "malformed":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{not json")
            return
        else:
            body = {"success": False, "error-codes": ["invalid-input-response"]}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def siteverify() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Siteverify)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    server.shutdown()
    server.server_close()


async def test_c7_captcha_guards_registration(
    settings: Settings, stores: Stores, audit_log: AuditLog, siteverify: str
) -> None:
    """C7: with CAPTCHA on, sign-up needs a token that siteverify accepts."""
    async with custom_server(
        settings,
        stores,
        audit_log,
        captcha_enabled=True,
        turnstile_secret_key="turnstile-test-secret",
        turnstile_verify_url=siteverify,
    ) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            outcomes = {}
            for token in ("", "fail", "malformed", "pass"):
                request = auth_pb2.RegisterRequest(
                    email=new_email(), password=strong_password(), name="C", captcha_token=token
                )
                try:
                    await stub.Register(request)
                    outcomes[token] = "ok"
                except grpc.RpcError as error:
                    outcomes[token] = code_of(error).name
    assert outcomes == {
        "": "FAILED_PRECONDITION",
        "fail": "PERMISSION_DENIED",
        "malformed": "UNAVAILABLE",
        "pass": "ok",
    }


async def test_c7_login_captcha_once_threat_is_medium(
    settings: Settings, stores: Stores, audit_log: AuditLog, siteverify: str
) -> None:
    """C7: in on_threat mode, sign-in asks for a token only from MEDIUM threat on."""
    from graphgate.server.settings import CaptchaMode

    clock = FakeClock(start=1_950_000_000.0 + uuid.uuid4().int % 10_000_000)
    async with custom_server(
        settings,
        stores,
        audit_log,
        clock=clock,
        rate_limit_enabled=False,
        captcha_enabled=True,
        captcha_mode=CaptchaMode.ON_THREAT,
        turnstile_secret_key="turnstile-test-secret",
        turnstile_verify_url=siteverify,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
    ) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            address = [("x-forwarded-for", f"192.0.2.{uuid.uuid4().int % 250 + 1}")]
            for _ in range(5):
                error = await _login(stub, new_email(), WRONG, address)
                assert error is not None
                assert code_of(error) == grpc.StatusCode.UNAUTHENTICATED
                clock.advance(16 * 60)
            needs = await _login(stub, new_email(), WRONG, address)
            assert needs is not None
            assert reason_of(needs) == "CAPTCHA_REQUIRED"


# --- C8 passwords --------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Short1!", "at least 12"),
        ("alllowercase123!", "upper-case"),
        ("ALLUPPERCASE123!", "lower-case"),
        ("NoDigitsHere!!x", "digit"),
        ("NoSpecials12345x", None),
        ("Aa1!Aa1!Aa1!Aa1!", "different characters"),
        ("Password123!", None),
        ("Qwertyuiop123!", None),
        ("x" * 129, "at most"),
    ],
)
async def test_c8_weak_passwords_are_refused_at_signup(
    channel: aio.Channel, stores: Stores, password: str, problem: str | None
) -> None:
    """C8: length, classes, distinct characters and strength are all enforced;
    nothing is stored for a refused sign-up."""
    email = new_email()
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        await stub.Register(auth_pb2.RegisterRequest(email=email, password=password, name="W"))
    assert code_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    if problem is not None and len(password) <= 128:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status

        status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
        assert status is not None
        text = ""
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                text = " ".join(v.description for v in bad.field_violations)
        assert problem in text
    assert await stores.postgres.fetchval("SELECT count(*) FROM users WHERE email = $1", email) == 0


async def test_c8_password_may_not_contain_the_users_email_or_name(channel: aio.Channel) -> None:
    """C8: the user's own email and name weaken a password below the score."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    reply = await stub.CheckPassword(
        auth_pb2.CheckPasswordRequest(
            password="Marguerite.Duras!1",
            email="marguerite.duras@example.com",
            name="Marguerite Duras",
        )
    )
    assert not reply.acceptable
    strong = await stub.CheckPassword(auth_pb2.CheckPasswordRequest(password=strong_password()))
    assert strong.acceptable
    assert strong.score >= 60


async def test_c8_policy_is_published(channel: aio.Channel) -> None:
    """C8: the policy RPC states the rules a UI shows."""
    reply = await auth_pb2_grpc.AuthServiceStub(channel).GetPasswordPolicy(
        auth_pb2.GetPasswordPolicyRequest()
    )
    policy = reply.policy
    assert (policy.min_length, policy.max_length, policy.min_distinct_characters) == (12, 128, 8)
    assert all(
        (policy.require_upper, policy.require_lower, policy.require_digit, policy.require_special)
    )
    assert policy.min_score == 60


@pytest.mark.slow
async def test_c8_default_password_hash_is_bcrypt_14(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """C8: with default settings, sign-up stores bcrypt cost 14."""
    assert Settings().bcrypt_rounds == 14
    async with custom_server(settings, stores, audit_log, bcrypt_rounds=14) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            account = await register(channel)
    stored = await stores.postgres.fetchval(
        "SELECT password_hash FROM users WHERE email = $1", account.email
    )
    assert stored.startswith("$2b$14$")


async def test_c8_long_passwords_are_not_truncated(guarded: Guarded) -> None:
    """C8: two passwords equal in their first 72 bytes are different passwords."""
    base = strong_password() + "é" * 40
    account_password = base + "A1"
    stub = guarded.stub
    email = new_email()
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=account_password, name="L"))
    error = await _login(stub, email, base + "B2")
    assert error is not None
    assert code_of(error) == grpc.StatusCode.UNAUTHENTICATED
    guarded.clock.advance(60)
    assert await _login(stub, email, account_password) is None
