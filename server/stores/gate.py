"""The hot-path gate in Valkey: credential state and rate windows, one trip.

Every key of one caller carries the caller's hash tag, so each script call
touches one cluster slot:

    gg:{u.<user_id>}:state          HASH active, valid_after (ms), tier; TTL 1 h
    gg:{u.<user_id>}:tok:<jti>      "revoked" | "refreshed:<deadline ms>"; TTL = token life
    gg:{k.<lookup_id>}:cache        HASH of a verified API key; short TTL
    gg:{k.<lookup_id>}:revoked      marker that outlives any cache entry
    gg:{k.<lookup_id>}:touch        throttles last_used_at writes
    gg:{<identity>}:rl:<cat>:<n>    sliding-window counter n of a category

``lua/gate.lua`` holds the logic; this module builds keys and reads results.
Driver errors become :class:`StoreUnavailable`; callers decide whether to fail
closed (tokens) or fall back (rate limits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import valkey.asyncio as valkey_asyncio
import valkey.exceptions

from graphgate.server.errors import StoreUnavailable

_GATE = (resources.files("graphgate.server.stores") / "lua" / "gate.lua").read_text()
_CACHE_KEY = """
if redis.call("EXISTS", KEYS[2]) == 1 then return 0 end
redis.call("HSET", KEYS[1], unpack(ARGV, 2))
redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[1]))
return 1
"""
#: A revoked-key marker must outlive every cache entry written before it.
REVOKED_MARKER_SECONDS = 7 * 24 * 3600
USER_STATE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A rate-limit question: may the caller make one more call in ``category``?

    ``limits`` holds the limit for the free, pro and enterprise tiers; the
    gate picks the caller's, since only it knows the tier on the hot path.
    """

    category: str
    limits: tuple[int, int, int]
    window_ms: int


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's answer: credential status, then the rate-limit decision."""

    status: str
    detail: str
    allowed: bool
    remaining: int
    reset_ms: int


def user_tag(user_id: str) -> str:
    """The hash tag of a user's keys."""
    return f"u.{user_id}"


def key_tag(lookup_id: str) -> str:
    """The hash tag of an API key's keys."""
    return f"k.{lookup_id}"


def ip_tag(digest: str) -> str:
    """The hash tag of an anonymous caller, by a keyed digest of its address."""
    return f"i.{digest}"


def _rate_keys(tag: str, rate: RateSpec | None, now_ms: int) -> list[str]:
    if rate is None:
        return []
    window = now_ms // rate.window_ms
    base = f"gg:{{{tag}}}:rl:{rate.category}"
    return [f"{base}:{window}", f"{base}:{window - 1}"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GateStore:
    """Valkey access for authentication state and rate windows."""

    def __init__(self, client: valkey_asyncio.Valkey) -> None:
        self._client = client
        self._gate = client.register_script(_GATE)
        self._cache_key = client.register_script(_CACHE_KEY)

    async def _run(self, keys: Sequence[str], args: Sequence[str | int]) -> GateResult:
        try:
            raw = await self._gate(keys=list(keys), args=list(args))
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey gate: {exc}") from exc
        return GateResult(
            status=_text(raw[0]),
            detail=_text(raw[1]),
            allowed=int(raw[2]) == 1,
            remaining=int(raw[3]),
            reset_ms=int(raw[4]),
        )

    @staticmethod
    def _rate_args(rate: RateSpec | None) -> list[str | int]:
        return [rate.window_ms, *rate.limits] if rate else [1, 0, 0, 0]

    async def check_user(
        self, user_id: str, token_id: str, issued_at_ms: int, now_ms: int, rate: RateSpec | None
    ) -> GateResult:
        """Check a user token's state and count the call (one round trip)."""
        tag = user_tag(user_id)
        keys = [
            f"gg:{{{tag}}}:state",
            f"gg:{{{tag}}}:tok:{token_id}",
            *_rate_keys(tag, rate, now_ms),
        ]
        return await self._run(keys, ["user", now_ms, *self._rate_args(rate), issued_at_ms])

    async def check_key(
        self, lookup_id: str, now_ms: int, touch_interval_ms: int, rate: RateSpec | None
    ) -> GateResult:
        """Check an API key's cached verification and count the call."""
        tag = key_tag(lookup_id)
        keys = [
            f"gg:{{{tag}}}:cache",
            f"gg:{{{tag}}}:revoked",
            f"gg:{{{tag}}}:touch",
            *_rate_keys(tag, rate, now_ms),
        ]
        return await self._run(keys, ["key", now_ms, *self._rate_args(rate), touch_interval_ms])

    async def count(self, tag: str, rate: RateSpec, now_ms: int) -> GateResult:
        """Count a call of the identity ``tag`` that no credential check counted."""
        return await self._run(
            _rate_keys(tag, rate, now_ms), ["anon", now_ms, *self._rate_args(rate)]
        )

    async def put_user_state(
        self, user_id: str, *, active: bool, valid_after_ms: int, tier: str
    ) -> None:
        """Publish a user's state to every replica (after a change or a cold read)."""
        key = f"gg:{{{user_tag(user_id)}}}:state"
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={"active": int(active), "valid_after": valid_after_ms, "tier": tier},
                )
                pipe.expire(key, USER_STATE_SECONDS)
                await pipe.execute()
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey user state: {exc}") from exc

    async def mark_token(self, user_id: str, token_id: str, value: str, ttl_ms: int) -> bool:
        """Set a token's marker unless it has one; False when it already had one."""
        key = f"gg:{{{user_tag(user_id)}}}:tok:{token_id}"
        try:
            done = await self._client.set(key, value, px=max(ttl_ms, 1), nx=True)
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey token marker: {exc}") from exc
        return bool(done)

    async def revoke_token(self, user_id: str, token_id: str, ttl_ms: int) -> None:
        """Revoke a token on every replica, overriding a refresh grace."""
        key = f"gg:{{{user_tag(user_id)}}}:tok:{token_id}"
        try:
            await self._client.set(key, "revoked", px=max(ttl_ms, 1))
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey token marker: {exc}") from exc

    async def cache_key(self, lookup_id: str, fields: dict[str, str], ttl_ms: int) -> bool:
        """Cache a verified API key unless it was revoked meanwhile."""
        tag = key_tag(lookup_id)
        flat = [item for pair in fields.items() for item in pair]
        try:
            done = await self._cache_key(
                keys=[f"gg:{{{tag}}}:cache", f"gg:{{{tag}}}:revoked"], args=[ttl_ms, *flat]
            )
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey key cache: {exc}") from exc
        return int(done) == 1

    async def revoke_keys(self, lookup_ids: Sequence[str]) -> None:
        """End API keys at once on every replica: marker set, cache dropped."""
        await self._set_key_markers(lookup_ids, revoked=True)

    async def restore_keys(self, lookup_ids: Sequence[str]) -> None:
        """Lift the markers of keys whose owner was reactivated."""
        await self._set_key_markers(lookup_ids, revoked=False)

    async def drop_key_caches(self, lookup_ids: Sequence[str]) -> None:
        """Forget cached verifications (after the owner's tier changed)."""
        if not lookup_ids:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for lookup_id in lookup_ids:
                    pipe.delete(f"gg:{{{key_tag(lookup_id)}}}:cache")
                await pipe.execute()
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey key cache: {exc}") from exc

    async def _set_key_markers(self, lookup_ids: Sequence[str], *, revoked: bool) -> None:
        if not lookup_ids:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for lookup_id in lookup_ids:
                    tag = key_tag(lookup_id)
                    if revoked:
                        pipe.set(f"gg:{{{tag}}}:revoked", "1", ex=REVOKED_MARKER_SECONDS)
                    else:
                        pipe.delete(f"gg:{{{tag}}}:revoked")
                    pipe.delete(f"gg:{{{tag}}}:cache")
                await pipe.execute()
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise StoreUnavailable(detail=f"Valkey key markers: {exc}") from exc
