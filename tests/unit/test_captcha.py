"""C7: Turnstile siteverify, against a real local HTTP server that speaks the protocol.

Cloudflare cannot be reached from tests, so a small server on 127.0.0.1 plays
siteverify: it reads the form POST and answers per path (pass, fail, slow,
malformed, 500), recording what it received.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from graphgate.server.errors import (
    ConfigurationError,
    FailedPrecondition,
    PermissionDenied,
    Unavailable,
)
from graphgate.server.services.brute_force import ThreatLevel
from graphgate.server.services.captcha import (
    INTERNAL_ERROR,
    NETWORK_ERROR,
    TIMEOUT,
    CaptchaPolicy,
    TurnstileVerifier,
    enforce_captcha,
)

SECRET = "test-secret-0x4AAA"
GOOD_TOKEN = "XXXX.DUMMY.TOKEN.XXXX"


@dataclass
class Siteverify:
    """The fake's state: the base URL and every form it received."""

    base_url: str
    forms: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(state: Siteverify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

        def _answer(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test): nothing to answer

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode()
            form = dict(urllib.parse.parse_qsl(raw))
            state.forms.append(form)
            path = self.path
            if path == "/slow":
                state.release.wait(timeout=5)  # well past the client's timeout
                self._answer(200, b'{"success": true}')
            elif path == "/malformed":
                self._answer(200, b'{"success": tru')
            elif path == "/500":
                self._answer(500, b'{"success": true}')
            elif path == "/no-success":
                self._answer(200, b'{"error-codes": []}')
            elif path == "/string-success":
                self._answer(200, b'{"success": "true"}')
            elif path == "/huge":
                self._answer(200, b'{"success": true, "pad": "' + b"x" * 200_000 + b'"}')
            elif path == "/fail" or form.get("secret") != SECRET:
                answer = {"success": False, "error-codes": ["invalid-input-response"]}
                self._answer(200, json.dumps(answer).encode())
            elif form.get("response") == GOOD_TOKEN:
                answer = {
                    "success": True,
                    "challenge_ts": "2025-01-01T00:00:00.000Z",
                    "hostname": "console.example.com",
                    "error-codes": [],
                    "action": "login",
                    "cdata": "",
                }
                self._answer(200, json.dumps(answer).encode())
            else:
                answer = {"success": False, "error-codes": ["timeout-or-duplicate"]}
                self._answer(200, json.dumps(answer).encode())

    return Handler


@pytest.fixture(scope="module")
def siteverify() -> Iterator[Siteverify]:
    state = Siteverify(base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def verifier(siteverify: Siteverify) -> AsyncIterator[TurnstileVerifier]:
    siteverify.forms.clear()
    v = TurnstileVerifier(SECRET, f"{siteverify.base_url}/", timeout_seconds=0.5)
    yield v
    await v.aclose()


def _verifier_at(siteverify: Siteverify, path: str) -> TurnstileVerifier:
    return TurnstileVerifier(SECRET, siteverify.base_url + path, timeout_seconds=0.3)


async def test_pass_speaks_the_siteverify_protocol(
    verifier: TurnstileVerifier, siteverify: Siteverify
) -> None:
    result = await verifier.verify(GOOD_TOKEN, "203.0.113.7")
    assert result.success
    assert result.error_codes == ()
    (form,) = siteverify.forms
    assert form["secret"] == SECRET
    assert form["response"] == GOOD_TOKEN
    assert form["remoteip"] == "203.0.113.7"
    assert len(form["idempotency_key"]) == 36  # a UUID


async def test_fail_returns_turnstiles_codes(verifier: TurnstileVerifier) -> None:
    result = await verifier.verify("someone-elses-token", None)
    assert not result.success
    assert result.error_codes == ("timeout-or-duplicate",)
    assert not result.verifier_unreachable


async def test_fail_path(siteverify: Siteverify) -> None:
    v = _verifier_at(siteverify, "/fail")
    try:
        result = await v.verify(GOOD_TOKEN, None)
    finally:
        await v.aclose()
    assert not result.success
    assert result.error_codes == ("invalid-input-response",)


async def test_remote_ip_that_is_not_an_ip_is_omitted(
    verifier: TurnstileVerifier, siteverify: Siteverify
) -> None:
    assert (await verifier.verify(GOOD_TOKEN, "unix")).success
    assert "remoteip" not in siteverify.forms[-1]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/slow", TIMEOUT),
        ("/malformed", INTERNAL_ERROR),
        ("/500", INTERNAL_ERROR),
        ("/no-success", INTERNAL_ERROR),
        ("/string-success", INTERNAL_ERROR),
        ("/huge", INTERNAL_ERROR),
    ],
)
async def test_fails_closed(siteverify: Siteverify, path: str, code: str) -> None:
    """C7: no usable answer is a failure, never a pass."""
    v = _verifier_at(siteverify, path)
    try:
        result = await v.verify(GOOD_TOKEN, "203.0.113.7")
    finally:
        await v.aclose()
    assert not result.success
    assert result.error_codes == (code,)
    assert result.verifier_unreachable


async def test_unreachable_verifier_fails_closed() -> None:
    # A port nobody listens on: connection refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    v = TurnstileVerifier(SECRET, f"http://127.0.0.1:{port}/", timeout_seconds=0.5)
    try:
        result = await v.verify(GOOD_TOKEN, None)
    finally:
        await v.aclose()
    assert not result.success
    assert result.error_codes == (NETWORK_ERROR,)


@pytest.mark.parametrize("token", ["", "x" * 2049])
async def test_empty_or_oversized_token_never_calls_out(
    verifier: TurnstileVerifier, siteverify: Siteverify, token: str
) -> None:
    result = await verifier.verify(token, None)
    assert not result.success
    assert siteverify.forms == []


async def test_token_of_2048_chars_is_sent(
    verifier: TurnstileVerifier, siteverify: Siteverify
) -> None:
    result = await verifier.verify("y" * 2048, None)
    assert not result.success  # the fake does not know it, but it was asked
    assert len(siteverify.forms) == 1


async def test_hostname_and_action_are_checked_when_configured(siteverify: Siteverify) -> None:
    url = siteverify.base_url + "/"
    right = TurnstileVerifier(
        SECRET, url, expected_hostnames={"console.example.com"}, expected_action="login"
    )
    wrong_host = TurnstileVerifier(SECRET, url, expected_hostnames={"evil.example"})
    wrong_action = TurnstileVerifier(SECRET, url, expected_action="register")
    try:
        assert (await right.verify(GOOD_TOKEN, None)).success
        assert (await wrong_host.verify(GOOD_TOKEN, None)).error_codes == ("hostname-mismatch",)
        assert (await wrong_action.verify(GOOD_TOKEN, None)).error_codes == ("action-mismatch",)
    finally:
        for v in (right, wrong_host, wrong_action):
            await v.aclose()


async def test_one_client_is_reused(verifier: TurnstileVerifier) -> None:
    first = verifier._client
    await verifier.verify(GOOD_TOKEN, None)
    await verifier.verify(GOOD_TOKEN, None)
    assert verifier._client is first


def test_empty_secret_is_a_configuration_error() -> None:
    """C7: enabled without a secret is an error, never a silent pass."""
    with pytest.raises(ConfigurationError):
        TurnstileVerifier("")


def test_policy_decides_when_a_token_is_needed() -> None:
    off = CaptchaPolicy(enabled=False, mode="always")
    always = CaptchaPolicy(enabled=True, mode="always")
    on_threat = CaptchaPolicy(enabled=True)
    assert not off.requires_token(ThreatLevel.CRITICAL)
    assert always.requires_token(ThreatLevel.LOW)
    assert not on_threat.requires_token(ThreatLevel.LOW)
    assert on_threat.requires_token(ThreatLevel.MEDIUM)
    assert on_threat.requires_token(ThreatLevel.CRITICAL)
    with pytest.raises(ValueError, match="mode"):
        CaptchaPolicy(enabled=True, mode="sometimes")  # type: ignore[arg-type]


async def test_enforce_captcha(verifier: TurnstileVerifier, siteverify: Siteverify) -> None:
    policy = CaptchaPolicy(enabled=True)
    # Not needed at LOW: no token, no call.
    await enforce_captcha(policy, verifier, token="", remote_ip=None, threat_level=ThreatLevel.LOW)
    assert siteverify.forms == []
    with pytest.raises(FailedPrecondition) as required:
        await enforce_captcha(
            policy, verifier, token="", remote_ip=None, threat_level=ThreatLevel.MEDIUM
        )
    assert required.value.reason == "CAPTCHA_REQUIRED"
    with pytest.raises(PermissionDenied) as failed:
        await enforce_captcha(
            policy, verifier, token="stale", remote_ip=None, threat_level=ThreatLevel.HIGH
        )
    assert failed.value.reason == "CAPTCHA_FAILED"
    assert "stale" not in str(failed.value)
    await enforce_captcha(
        policy, verifier, token=GOOD_TOKEN, remote_ip=None, threat_level=ThreatLevel.HIGH
    )
    with pytest.raises(Unavailable):
        await enforce_captcha(
            policy, None, token=GOOD_TOKEN, remote_ip=None, threat_level=ThreatLevel.HIGH
        )


async def test_enforce_captcha_unreachable_is_unavailable(siteverify: Siteverify) -> None:
    v = _verifier_at(siteverify, "/500")
    try:
        with pytest.raises(Unavailable) as caught:
            await enforce_captcha(
                CaptchaPolicy(enabled=True, mode="always"),
                v,
                token=GOOD_TOKEN,
                remote_ip=None,
                threat_level=ThreatLevel.LOW,
            )
    finally:
        await v.aclose()
    assert caught.value.reason == "CAPTCHA_UNAVAILABLE"
