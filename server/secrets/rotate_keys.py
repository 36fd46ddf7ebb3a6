"""Rotation of the key rings: JWT signing keys and operator API keys (C13).

Both secrets hold a ring (``GRAPHGATE_JWT_KEYRING`` /
``GRAPHGATE_OPERATOR_KEYRING``: keys with creation and activation times)
plus the plain key setting (``JWT_SECRET_KEY`` / ``OPERATOR_API_KEY``),
which always names a key of the ring that is active when written.

* create: a new key activating ``TTL + skew`` later (every replica accepts
  it before any replica signs with it, or any operator presents it); keys
  whose successor has been active longer than the retention are dropped.
* set: nothing outside the secret: replicas pick the ring up within the TTL.
* test: every key is 64 hex characters; for JWT, a token signed by each key
  verifies with the whole ring.

Security: keys come from :func:`graphgate.server.secrets.keyring.new_key`;
the old key keeps verifying for at least the longest token lifetime (and a
day) after the new key takes over.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from graphgate.server.errors import Unauthenticated
from graphgate.server.secrets.client import Document
from graphgate.server.secrets.keyring import (
    CLOCK_SKEW_SECONDS,
    MIN_JWT_RETENTION_SECONDS,
    bootstrap_ring,
    in_use,
    ring_json,
    rotated,
)
from graphgate.server.secrets.steps import RotationContext, RotationError
from graphgate.server.services.tokens import TokenService
from graphgate.server.settings import KeyVersion, parse_keyring

_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def _ring(
    document: Document, ring_name: str, single_name: str, secret_id: str
) -> tuple[KeyVersion, ...]:
    """The ring stored in ``document`` (a lone plain key becomes a one-key ring)."""
    raw = document.get(ring_name)
    if raw is None:
        single = document.get(single_name)
        return bootstrap_ring(single if isinstance(single, str) else None)
    try:
        return parse_keyring(raw if isinstance(raw, str) else json.dumps(raw))
    except ValueError as exc:
        raise RotationError(f"secret {secret_id}: {ring_name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class KeyringRotator:
    """Rotates one ring; ``ring_name`` and ``single_name`` are the settings it writes."""

    ring_name: str
    single_name: str
    jwt: bool
    invalidates_previous: bool = False

    def _retention(self, context: RotationContext) -> float:
        if not self.jwt:
            return 0.0
        return max(float(context.settings.jwt_expiry_seconds), MIN_JWT_RETENTION_SECONDS)

    def create(self, current: Document, context: RotationContext) -> Document:
        """The ring with a new key; the plain setting names the key active now."""
        now = context.clock()
        ring = _ring(current, self.ring_name, self.single_name, context.secret_id)
        new_ring = rotated(
            ring,
            now=now,
            activation_delay=context.settings.secrets_ttl_seconds + CLOCK_SKEW_SECONDS,
            retention=self._retention(context),
        )
        return {
            **current,
            self.ring_name: ring_json(new_ring),
            self.single_name: in_use(new_ring, now).key,
        }

    async def apply(
        self, current: Document, pending: Document, context: RotationContext
    ) -> list[str]:
        """Nothing to change outside the secret."""
        return [f"{self.ring_name}: replicas take the new ring within the cache TTL"]

    async def verify(self, pending: Document, context: RotationContext) -> None:
        """Every key well formed; for JWT, each key's token verifies with the ring."""
        ring = _ring(pending, self.ring_name, self.single_name, context.secret_id)
        if not ring or any(not _HEX_KEY.fullmatch(k.key) for k in ring):
            raise RotationError(
                f"secret {context.secret_id}: {self.ring_name} holds a malformed key"
            )
        if pending.get(self.single_name) not in {k.key for k in ring}:
            raise RotationError(
                f"secret {context.secret_id}: {self.single_name} is not in the ring"
            )
        if not self.jwt:
            return
        keys = [k.key for k in ring]
        verifier = TokenService(
            signing_keys=keys, issuer="rotation-test", audience="rotation-test", lifetime_seconds=60
        )
        for key in keys:
            signer = TokenService(
                signing_keys=[key],
                issuer="rotation-test",
                audience="rotation-test",
                lifetime_seconds=60,
            )
            try:
                verifier.verify(signer.issue("rotation-test").token)
            except Unauthenticated as exc:
                raise RotationError(
                    f"secret {context.secret_id}: a ring key does not verify"
                ) from exc


JWT = KeyringRotator("GRAPHGATE_JWT_KEYRING", "JWT_SECRET_KEY", jwt=True)
OPERATOR = KeyringRotator("GRAPHGATE_OPERATOR_KEYRING", "OPERATOR_API_KEY", jwt=False)
