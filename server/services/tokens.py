"""Access tokens: HS256 JWTs with pinned algorithm and required claims (C1).

Security: only HS256 is accepted (``alg: none`` and every other algorithm are
refused by pyjwt's allow-list); ``exp``, ``iat``, ``sub``, ``jti``, ``iss`` and
``aud`` are required and checked. Tokens name their signing key with ``kid``,
so a rotated key keeps verifying until its tokens have expired (C13).
Revocation, refresh grace and "user still active" are checked by the gate,
not here: this module only proves a token was issued by us and is current.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jwt

from graphgate.server.errors import Unauthenticated

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "jti", "iss", "aud"]


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims of a token."""

    user_id: str
    token_id: str
    issued_at: float
    expires_at: float
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed token and its claims."""

    token: str
    claims: Claims


def key_id(secret: str) -> str:
    """A short, non-secret name for a signing key."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class TokenService:
    """Signs and verifies access tokens.

    ``signing_keys`` lists secrets newest first: the first signs, all verify.
    """

    def __init__(
        self,
        *,
        signing_keys: Sequence[str],
        issuer: str,
        audience: str,
        lifetime_seconds: int,
        clock: Callable[[], float] = time.time,
        verified_cache_size: int = 10_000,
    ) -> None:
        if not signing_keys:
            raise ValueError("at least one signing key is required")
        self._keys = {key_id(k): k for k in signing_keys}
        self._current = key_id(signing_keys[0])
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime_seconds
        self._clock = clock
        # Token text -> its claims, for tokens already verified. The text is
        # the exact signed token, so a hit proves what a signature check would;
        # expiry is re-checked on every hit. Revocation is never cached here.
        self._verified: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = verified_cache_size

    @property
    def lifetime_seconds(self) -> int:
        """How long a new token lives."""
        return self._lifetime

    def issue(self, user_id: str, *, fingerprint: str | None = None) -> IssuedToken:
        """Sign a new token for ``user_id`` (bound to ``fingerprint`` for browsers)."""
        now = round(self._clock(), 3)
        claims = Claims(
            user_id=user_id,
            token_id=secrets.token_urlsafe(16),
            issued_at=now,
            expires_at=now + self._lifetime,
            fingerprint=fingerprint,
        )
        payload: dict[str, object] = {
            "sub": user_id,
            "jti": claims.token_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "iss": self._issuer,
            "aud": self._audience,
        }
        if fingerprint:
            payload["fp"] = fingerprint
        token = jwt.encode(
            payload, self._keys[self._current], algorithm=ALGORITHM, headers={"kid": self._current}
        )
        return IssuedToken(token=token, claims=claims)

    def verify(self, token: str) -> Claims:
        """The claims of a valid, current token.

        Raises :class:`Unauthenticated` with reason ``TOKEN_EXPIRED`` or
        ``TOKEN_INVALID``; the message never says what was wrong. Cost: a
        dictionary lookup for a token seen before, else one HMAC and JSON parse.
        """
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at <= time.time():
                del self._verified[token]
                raise Unauthenticated(reason="TOKEN_EXPIRED", detail="expired (cached)")
            self._verified.move_to_end(token)
            return cached
        claims = self._decode(token)
        self._verified[token] = claims
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return claims

    def _decode(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
            secret = self._keys.get(str(header.get("kid", "")))
            if secret is None or header.get("alg") != ALGORITHM:
                raise jwt.InvalidTokenError("unknown key or algorithm")
            payload = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED},
                leeway=0,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated(reason="TOKEN_EXPIRED", detail=str(exc)) from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(reason="TOKEN_INVALID", detail=str(exc)) from exc
        fingerprint = payload.get("fp")
        return Claims(
            user_id=str(payload["sub"]),
            token_id=str(payload["jti"]),
            issued_at=float(payload["iat"]),
            expires_at=float(payload["exp"]),
            fingerprint=str(fingerprint) if fingerprint else None,
        )
