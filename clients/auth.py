"""Credentials: an API key, or a session kept fresh before it expires.

An API key goes as ``x-api-key`` on every call. A session (from email and
password, or a token saved by ``graphgate login``) goes as ``authorization:
Bearer``; the client refreshes it once less than ``refresh_margin`` of its
life is left (at most half its lifetime), and signs in again with the
password when a refresh is no longer possible.

The server allows each token one refresh (C3: a second refresh of the same
token is treated as theft and refused), so renewals must be single-flight:
the sync client renews under a ``threading.Lock``, the async client under an
``asyncio.Lock``, and whoever waited on the lock re-checks before renewing.
This module holds the state both share; the renewal itself lives next to
each transport.

Security: secrets never appear in ``repr``; deadlines come from
``expires_in_seconds`` and the monotonic clock, so a wrong wall clock does not
keep an expired token in use.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

#: Refresh this long before expiry at most (never earlier than half the lifetime).
DEFAULT_REFRESH_MARGIN = 60.0
#: ErrorInfo reasons after which a fresh sign-in may help.
STALE_TOKEN_REASONS = frozenset({"TOKEN_EXPIRED", "TOKEN_REVOKED", "TOKEN_INVALID"})
#: After a failed refresh, keep using the token this long before trying again.
_RETRY_REFRESH_AFTER = 5.0

Metadata = list[tuple[str, str]]


class SessionLike(Protocol):
    """A ``graphgate.v1.Session`` message or a :class:`~graphgate.clients.models.Session`."""

    @property
    def access_token(self) -> str: ...

    @property
    def expires_in_seconds(self) -> int: ...


class ApiKeyCredentials:
    """An API key (or the operator key), sent as ``x-api-key``."""

    def __init__(self, api_key: str) -> None:
        if not api_key or any(c.isspace() for c in api_key):
            raise ValueError("an API key is a non-empty string without spaces")
        self._key = api_key

    def __repr__(self) -> str:
        return "ApiKeyCredentials(<hidden>)"

    def headers(self) -> Metadata:
        """The call metadata carrying the key."""
        return [("x-api-key", self._key)]


class SessionCredentials:
    """A bearer session and how to renew it (refresh, or sign in again).

    Not thread-safe on its own: transports hold the lock around renewals.
    """

    def __init__(
        self,
        *,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.email = email
        self._password = password
        self._margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self.expires_at_utc: datetime | None = None
        if token:
            self.accept_token(token)

    def __repr__(self) -> str:
        return f"SessionCredentials(email={self.email!r}, token=<hidden>)"

    @property
    def token(self) -> str | None:
        """The current access token, if any."""
        return self._token

    @property
    def can_sign_in(self) -> bool:
        """True when an email and password are known (a lost session can be replaced)."""
        return bool(self.email and self._password)

    @property
    def password(self) -> str | None:
        """The password used to sign in again, if one was given."""
        return self._password

    def due(self) -> bool:
        """True when the session should be renewed before the next call."""
        return self._token is None or self._clock() >= self._refresh_at

    def alive(self) -> bool:
        """True while the token has not expired (it may still be refreshed)."""
        return self._token is not None and self._clock() < self._expires_at - 1.0

    def headers(self) -> Metadata:
        """The call metadata carrying the bearer token."""
        if self._token is None:
            return []
        return [("authorization", f"Bearer {self._token}")]

    def accept(self, session: SessionLike) -> None:
        """Adopt a session the server issued (login, refresh, password change)."""
        lifetime = float(session.expires_in_seconds) or _lifetime_of(session.access_token)
        self._set(session.access_token, lifetime, lifetime)

    def accept_token(self, token: str) -> None:
        """Adopt a saved token; its lifetime is read from its (unverified) claims."""
        claims = _claims(token)
        exp, iat = claims.get("exp"), claims.get("iat")
        remaining = float(exp) - time.time() if isinstance(exp, int | float) else 0.0
        lifetime = (
            float(exp - iat)
            if isinstance(exp, int | float) and isinstance(iat, int | float)
            else remaining
        )
        self._set(token, remaining, lifetime)

    def _set(self, token: str, remaining: float, lifetime: float) -> None:
        now = self._clock()
        margin = min(self._margin, max(lifetime, 0.0) / 2)
        self._token = token
        self._expires_at = now + remaining
        self._refresh_at = now + remaining - margin
        self.expires_at_utc = datetime.fromtimestamp(time.time() + remaining, UTC)

    def postpone(self) -> None:
        """A refresh failed for a passing reason: keep the token a little longer."""
        self._refresh_at = min(self._clock() + _RETRY_REFRESH_AFTER, self._expires_at)

    def invalidate(self, token: str | None) -> None:
        """Forget ``token`` (the server refused it) unless it was replaced already."""
        if token is not None and token == self._token:
            self._token = None
            self._refresh_at = self._expires_at = 0.0
            self.expires_at_utc = None

    def clear(self) -> None:
        """Forget the session and the password (after logout)."""
        self._token = None
        self._password = None
        self._refresh_at = self._expires_at = 0.0
        self.expires_at_utc = None


def _lifetime_of(token: str) -> float:
    claims = _claims(token)
    exp = claims.get("exp")
    return max(0.0, float(exp) - time.time()) if isinstance(exp, int | float) else 0.0


def _claims(token: str) -> dict[str, object]:
    """A JWT's payload, unverified: only to schedule the refresh, never to trust."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return decoded if isinstance(decoded, dict) else {}
