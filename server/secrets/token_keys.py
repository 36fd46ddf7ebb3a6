"""A ``TokenService`` whose keys follow the JWT key ring as it rotates (C12, C13).

:class:`RotatingTokenService` is a drop-in for
:class:`~graphgate.server.services.tokens.TokenService`: it asks a key source
(normally :meth:`SecretsProvider.current_jwt_keys`) for the keys on each call
and swaps in a fresh inner service when they changed, so a rotated key
takes effect without a restart.

Security: the inner service still pins HS256, requires every claim and
chooses the verification key by ``kid``; this class only decides which keys
it holds. The key source returns the same tuple object while nothing
changed, so the hot path costs an identity comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from graphgate.server.services.tokens import Claims, IssuedToken, TokenService


class RotatingTokenService(TokenService):
    """Signs with the key in use and verifies with every key of the ring."""

    def __init__(
        self,
        *,
        keys: Callable[[], Sequence[str]],
        issuer: str,
        audience: str,
        lifetime_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        initial = tuple(keys())
        super().__init__(
            signing_keys=initial,
            issuer=issuer,
            audience=audience,
            lifetime_seconds=lifetime_seconds,
            clock=clock,
        )
        self._source = keys
        self._options = (issuer, audience, lifetime_seconds, clock)
        self._held: Sequence[str] = initial
        self._inner = self._build(initial)

    def _build(self, keys: Sequence[str]) -> TokenService:
        issuer, audience, lifetime, clock = self._options
        return TokenService(
            signing_keys=keys,
            issuer=issuer,
            audience=audience,
            lifetime_seconds=lifetime,
            clock=clock,
        )

    def _service(self) -> TokenService:
        wanted = self._source()
        if wanted is not self._held and tuple(wanted) != tuple(self._held):
            # One assignment: a concurrent call sees the old or the new service, whole.
            self._inner = self._build(wanted)
        self._held = wanted
        return self._inner

    def issue(self, user_id: str, *, fingerprint: str | None = None) -> IssuedToken:
        """Sign with the key in use now."""
        return self._service().issue(user_id, fingerprint=fingerprint)

    def verify(self, token: str) -> Claims:
        """Verify with whichever ring key the token's ``kid`` names."""
        return self._service().verify(token)
