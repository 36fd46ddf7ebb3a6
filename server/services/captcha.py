"""CAPTCHA (CONTROLS.md C7): Cloudflare Turnstile server-side verification and when to ask.

:class:`TurnstileVerifier` speaks Turnstile's *siteverify* protocol: a form
POST of ``secret``, ``response`` (the widget's token), ``remoteip`` and
``idempotency_key`` to the verify URL, answered by JSON with ``success``,
``error-codes``, ``challenge_ts``, ``hostname``, ``action``, ``cdata``.
:class:`CaptchaPolicy` decides whether a call needs a token (always, or once
the caller's threat level reaches a threshold), and :func:`enforce_captcha`
puts the two together for a handler.

Security: the token is client text and the answer comes over the network, so
the verifier **fails closed**: anything but a well-formed 200 answer whose
``success`` is JSON ``true`` (a timeout, a refused connection, another status,
malformed or oversized JSON, a missing or non-boolean ``success``, an
unexpected hostname or action when those are configured) is a failure. Empty
tokens and tokens over 2048 characters (Turnstile's maximum) fail without a
network call. The secret and the token are never logged. The verifier reads
no environment (no proxy settings either): everything comes through its
constructor. For development, Cloudflare documents test secrets that always
pass or always fail; an empty secret is a configuration error, never a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import httpx

from graphgate.server.errors import (
    ConfigurationError,
    FailedPrecondition,
    PermissionDenied,
    Unavailable,
)
from graphgate.server.services.brute_force import ThreatLevel

__all__ = [
    "SITEVERIFY_URL",
    "CaptchaPolicy",
    "CaptchaResult",
    "TurnstileVerifier",
    "enforce_captcha",
]

_log = logging.getLogger(__name__)

SITEVERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
#: Turnstile tokens are at most this long; longer text is not a token.
MAX_TOKEN_CHARS = 2048
# A siteverify answer is a few hundred bytes; anything far larger is not one.
_MAX_ANSWER_BYTES = 64 * 1024
# Our own error codes, for failures that never got an answer from Turnstile.
#: The verify call ran past ``timeout_seconds``.
TIMEOUT = "timeout"
#: The verify URL could not be reached.
NETWORK_ERROR = "network-error"
#: Turnstile (or something in between) answered, but not with a usable answer.
INTERNAL_ERROR = "internal-error"
_UNREACHABLE = frozenset({TIMEOUT, NETWORK_ERROR, INTERNAL_ERROR})


@dataclass(frozen=True)
class CaptchaResult:
    """Whether a token was verified; ``error_codes`` says why not (Turnstile's or ours)."""

    success: bool
    error_codes: tuple[str, ...] = ()

    @property
    def verifier_unreachable(self) -> bool:
        """True when the failure is ours or the network's, not the token's (retrying may help)."""
        return not self.success and bool(_UNREACHABLE.intersection(self.error_codes))


class TurnstileVerifier:
    """Checks Turnstile tokens with one reused HTTP client; :meth:`aclose` it at shutdown.

    ``timeout_seconds`` bounds the whole call (connect, send, wait, read).
    ``expected_hostnames`` / ``expected_action``, when given, must match what
    Turnstile reports, so a token solved on another site or for another form
    is refused. Raises ``ConfigurationError`` for an empty secret.
    """

    def __init__(
        self,
        secret_key: str,
        verify_url: str = SITEVERIFY_URL,
        timeout_seconds: float = 5.0,
        *,
        expected_hostnames: Collection[str] = (),
        expected_action: str | None = None,
    ) -> None:
        if not secret_key:
            raise ConfigurationError(["CAPTCHA is enabled but its secret key is empty"])
        self._secret = secret_key
        self._url = verify_url
        self._timeout = timeout_seconds
        self._hostnames = frozenset(expected_hostnames)
        self._action = expected_action
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            trust_env=False,
        )

    async def verify(self, token: str, remote_ip: str | None) -> CaptchaResult:
        """Verify ``token`` (from the widget) for the client at ``remote_ip``.

        Never raises for a bad token, a bad answer or an unreachable verifier:
        those are ``success=False`` with error codes (:data:`TIMEOUT`,
        :data:`NETWORK_ERROR`, :data:`INTERNAL_ERROR`, or Turnstile's own such
        as ``invalid-input-response`` and ``timeout-or-duplicate``). Cost: one
        HTTPS round trip, at most ``timeout_seconds``; none for an empty or
        oversized token.
        """
        if not token:
            return CaptchaResult(False, ("missing-input-response",))
        if len(token) > MAX_TOKEN_CHARS:
            return CaptchaResult(False, ("invalid-input-response",))
        form = {
            "secret": self._secret,
            "response": token,
            # The same key on a retry lets Turnstile answer it instead of
            # reporting the token as already used.
            "idempotency_key": str(uuid.uuid4()),
        }
        if remote_ip is not None:
            # "unix", "unknown": an optional field is better omitted than wrong.
            with contextlib.suppress(ValueError):
                form["remoteip"] = str(ipaddress.ip_address(remote_ip))
        try:
            # httpx's timeout is per phase; a server dripping bytes could
            # stretch the whole call, so the total is bounded here too.
            async with asyncio.timeout(self._timeout):
                status, body = await self._post(form)
        except (httpx.TimeoutException, TimeoutError):
            _log.warning("turnstile siteverify timed out after %.1f s", self._timeout)
            return CaptchaResult(False, (TIMEOUT,))
        except (httpx.HTTPError, OSError) as exc:
            _log.warning("turnstile siteverify unreachable: %s", type(exc).__name__)
            return CaptchaResult(False, (NETWORK_ERROR,))
        if status != 200:
            _log.warning("turnstile siteverify answered HTTP %d", status)
            return CaptchaResult(False, (INTERNAL_ERROR,))
        return self._interpret(body)

    async def aclose(self) -> None:
        """Close the HTTP client (its connections); the verifier is unusable after."""
        await self._client.aclose()

    async def __aenter__(self) -> TurnstileVerifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _post(self, form: dict[str, str]) -> tuple[int, bytes | None]:
        # Read by chunks so an oversized answer is cut off, not buffered.
        async with self._client.stream("POST", self._url, data=form) as response:
            if response.status_code != 200:
                return response.status_code, None
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_ANSWER_BYTES:
                    return response.status_code, None
            return response.status_code, body

    def _interpret(self, body: bytes | None) -> CaptchaResult:
        try:
            answer = json.loads(body) if body is not None else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            _log.warning("turnstile siteverify gave an unusable answer")
            return CaptchaResult(False, (INTERNAL_ERROR,))
        raw_codes = answer.get("error-codes")
        codes = tuple(
            str(code)[:64] for code in (raw_codes if isinstance(raw_codes, list) else [])
        )[:8]
        if answer["success"] is not True:
            return CaptchaResult(False, codes or ("invalid-input-response",))
        if self._hostnames and answer.get("hostname") not in self._hostnames:
            return CaptchaResult(False, ("hostname-mismatch",))
        if self._action is not None and answer.get("action") != self._action:
            return CaptchaResult(False, ("action-mismatch",))
        return CaptchaResult(True, ())


@dataclass(frozen=True)
class CaptchaPolicy:
    """When a CAPTCHA token is required (C7).

    ``enabled`` is ``CAPTCHA_ENABLED``. ``mode="always"`` asks on every
    registration and sign-in; ``mode="on_threat"`` once the caller's threat
    level (from the brute-force guard) is ``threshold`` or more.
    """

    enabled: bool = False
    mode: Literal["always", "on_threat"] = "on_threat"
    threshold: ThreatLevel = ThreatLevel.MEDIUM

    def __post_init__(self) -> None:
        if self.mode not in ("always", "on_threat"):
            raise ValueError("mode must be 'always' or 'on_threat'")

    def requires_token(self, threat_level: ThreatLevel) -> bool:
        """True if a call from a client at ``threat_level`` must carry a verified token."""
        if not self.enabled:
            return False
        return self.mode == "always" or threat_level >= self.threshold


async def enforce_captcha(
    policy: CaptchaPolicy,
    verifier: TurnstileVerifier | None,
    *,
    token: str,
    remote_ip: str | None,
    threat_level: ThreatLevel,
) -> None:
    """Raise unless the call may proceed as far as the CAPTCHA is concerned.

    Raises ``FailedPrecondition`` (reason ``CAPTCHA_REQUIRED``) when a token is
    required but none was sent, so a UI knows to show the widget;
    ``PermissionDenied`` (``CAPTCHA_FAILED``) when the token is refused;
    ``Unavailable`` (``CAPTCHA_UNAVAILABLE``, safe to retry) when the verifier
    cannot be reached: closed, not open. A required token with no verifier
    configured is refused too (startup validation should prevent it). Cost:
    one siteverify round trip when a token is required.
    """
    if not policy.requires_token(threat_level):
        return
    if not token:
        raise FailedPrecondition(public_message="a CAPTCHA is required", reason="CAPTCHA_REQUIRED")
    if verifier is None:
        raise Unavailable(
            public_message="CAPTCHA verification unavailable",
            reason="CAPTCHA_UNAVAILABLE",
            detail="CAPTCHA required but no verifier is configured",
        )
    result = await verifier.verify(token, remote_ip)
    if result.success:
        return
    detail = "turnstile: " + ",".join(result.error_codes)
    if result.verifier_unreachable:
        raise Unavailable(
            public_message="CAPTCHA verification unavailable",
            reason="CAPTCHA_UNAVAILABLE",
            detail=detail,
        )
    raise PermissionDenied(
        public_message="CAPTCHA verification failed", reason="CAPTCHA_FAILED", detail=detail
    )
