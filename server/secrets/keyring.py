"""Key rings: JWT signing keys and operator API keys that rotate without downtime (C13).

A ring is a list of :class:`~graphgate.server.settings.KeyVersion`, newest
first. Every key in the ring is *accepted* (verifies a token, admits an
operator). The key *used* (to sign, or for operators to present) is the
newest one whose ``activates_at`` has passed.

Why activation is delayed: replicas cache secrets for up to the TTL (1 h).
If a replica signed with a new key the moment it saw it, a replica still
holding the old ring would refuse those tokens for up to an hour. A new key
therefore activates ``ttl + skew`` after it is written: by then every
replica has re-read the secret and accepts it.

Why old keys stay: a token signed just before the switch lives for its full
lifetime. A key is dropped only when the key after it has been active for
``skew + retention`` (retention = the longest token lifetime, at least a
day), and only by the next rotation.

Security: keys are 64 hex characters from :mod:`secrets` (256 bits). Hex
also keeps them clear of the "development value" words C21 refuses.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from graphgate.server.settings import KeyVersion, Settings

#: Allowed disagreement between replica clocks.
CLOCK_SKEW_SECONDS = 300.0
#: JWT keys are kept at least this long after their successor activates.
MIN_JWT_RETENTION_SECONDS = 86_400.0


def new_key() -> str:
    """A fresh 256-bit key as 64 hex characters."""
    return secrets.token_hex(32)


def bootstrap_ring(single: str | None) -> tuple[KeyVersion, ...]:
    """The ring of a deployment that so far had one plain key (active since ever)."""
    return (KeyVersion(single, 0.0, 0.0),) if single else ()


def in_use(ring: Sequence[KeyVersion], now: float) -> KeyVersion:
    """The key to sign with (or present) at ``now``.

    The newest active key; if none is active yet (a ring written entirely
    in the future), the oldest, so there is always exactly one.
    """
    if not ring:
        raise ValueError("empty key ring")
    ordered = sorted(ring, key=lambda k: k.created_at, reverse=True)
    return next((k for k in ordered if k.activates_at <= now), ordered[-1])


def signing_order(ring: Sequence[KeyVersion], now: float) -> tuple[str, ...]:
    """Keys for ``TokenService(signing_keys=...)``: the one in use, then every other."""
    first = in_use(ring, now)
    rest = [k.key for k in sorted(ring, key=lambda k: k.created_at, reverse=True) if k != first]
    return (first.key, *rest)


def next_activation(ring: Iterable[KeyVersion], now: float) -> float | None:
    """When the key in use next changes by time alone (``None``: not by time)."""
    later = [k.activates_at for k in ring if k.activates_at > now]
    return min(later) if later else None


def rotated(
    ring: Sequence[KeyVersion],
    *,
    now: float,
    activation_delay: float,
    retention: float,
    key: str | None = None,
) -> tuple[KeyVersion, ...]:
    """``ring`` with a new key (activating after ``activation_delay``) and
    without the keys nobody can still need.

    A key is kept while it is in use or newer, or until the key that
    succeeded it has been active for ``CLOCK_SKEW_SECONDS + retention``.
    """
    ordered = sorted(ring, key=lambda k: k.created_at, reverse=True)
    current = in_use(ordered, now) if ordered else None
    kept: list[KeyVersion] = []
    successor: KeyVersion | None = None
    for version in ordered:  # newest first: each key's successor was seen before it
        needed = (
            current is None
            or version.created_at >= current.created_at
            or successor is None
            or now < successor.activates_at + CLOCK_SKEW_SECONDS + retention
        )
        if needed:
            kept.append(version)
        successor = version
    fresh = KeyVersion(key or new_key(), now, now + activation_delay)
    return (fresh, *kept)


def jwt_keys(settings: Settings, now: float) -> tuple[str, ...]:
    """``TokenService`` keys at ``now``: the ring's key in use first, or the one plain key."""
    ring = settings.jwt_keyring or bootstrap_ring(settings.jwt_secret_key)
    return signing_order(ring, now) if ring else ()


def operator_keys(settings: Settings) -> tuple[str, ...]:
    """Every operator API key accepted (old and new during a rotation)."""
    ring = settings.operator_keyring or bootstrap_ring(settings.operator_api_key)
    return tuple(k.key for k in ring)


def operator_key_to_present(settings: Settings, now: float) -> str | None:
    """The operator key a client (the CLI) should send at ``now``: the ring's
    key in use, which every replica already accepts, else the plain key."""
    if settings.operator_keyring:
        return in_use(settings.operator_keyring, now).key
    return settings.operator_api_key


def ring_json(ring: Sequence[KeyVersion]) -> list[dict[str, object]]:
    """The JSON list a ring is stored as (newest first)."""
    return [k.to_json() for k in sorted(ring, key=lambda k: k.created_at, reverse=True)]


@dataclass(frozen=True, slots=True)
class KeyringCheck:
    """Constant-time check of a presented key against every accepted key.

    Every comparison runs even after a match, so timing does not tell which
    key (old or new) matched.
    """

    accepted: tuple[str, ...]

    def matches(self, presented: str | None) -> bool:
        """True when ``presented`` is one of the accepted keys."""
        if not presented:
            return False
        found = False
        for key in self.accepted:
            found |= hmac.compare_digest(presented.encode(), key.encode())
        return found
