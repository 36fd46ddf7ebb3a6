"""Authentication-failure counters (C6): every Valkey key, the Lua script, and a memory twin.

Two implementations of one small interface, :class:`AuthFailureStore`:

* :class:`ValkeyAuthFailureStore` keeps the counters in Valkey, shared by all
  replicas. Each operation is one pipelined round trip of two EVALSHA calls of
  ``lua/auth_failures.lua`` (one per dimension: client IP and target account),
  each atomic on its own. Keys carry the identity's hash tag, so each call
  touches one cluster slot; one call spanning both identities would be refused
  (CROSSSLOT) by a cluster, hence two calls in one pipeline rather than one.
* :class:`MemoryAuthFailureStore` follows the same rules in this process only,
  bounded with LRU eviction: the brute-force guard's fallback while Valkey
  cannot answer.

Stores keep state; the *policy* (thresholds, durations) arrives with every call
as :class:`FailureRules`, so a settings change needs no script change and the
two implementations cannot disagree about numbers.

Key layout (``<h>`` = 64 hex characters of :func:`identity_digest`)::

    gg:bf:{i.<h>}:w   ZSET  the IP's failures in the window (member seq, score ms)
    gg:bf:{i.<h>}:s   HASH  streak, last failure ms, seq; TTL = window
    gg:bf:{i.<h>}:b   STR   "<until_ms>:<level>" while blocked; TTL = the block
    gg:bf:{a.<h>}:s   HASH  the account's streak, last failure ms; TTL = window
    gg:bf:{a.<h>}:k   ZSET  IP digests that signed in to the account; TTL = known_ip_ttl

Security: IPs and e-mail addresses are personal data and attacker-chosen text.
Neither ever appears in a key, a value or a log line: they are reduced by
:func:`identity_digest`, an HMAC-SHA256 under a server secret (plain SHA-256 of
an IPv4 address is reversed by trying all 2**32 of them; with a secret it is
not). Every per-identity structure is bounded (``max_tracked_failures``,
``max_known_ips``, the memory store's ``max_identities``), so no sequence of
requests grows memory without bound. Driver errors become
:class:`~graphgate.server.errors.StoreUnavailable` at this boundary, with the
driver's text in ``detail`` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Protocol

from valkey.asyncio import Valkey
from valkey.exceptions import NoScriptError, ValkeyError

from graphgate.server.errors import StoreUnavailable

__all__ = [
    "AuthFailureStore",
    "BlockRule",
    "FailureRules",
    "FailureSnapshot",
    "IdentityDigest",
    "MemoryAuthFailureStore",
    "ValkeyAuthFailureStore",
    "identity_digest",
]

_KEY_PREFIX = "gg:bf:"


@dataclass(frozen=True, slots=True)
class IdentityDigest:
    """A keyed hash standing for an IP or an account; only :func:`identity_digest` makes one."""

    kind: str  # "i" (client IP) or "a" (account)
    hexdigest: str

    def __repr__(self) -> str:
        # Short, so log lines and test failures stay readable; still not reversible.
        return f"IdentityDigest({self.kind}.{self.hexdigest[:12]}…)"


def identity_digest(kind: str, value: str, *, secret: bytes) -> IdentityDigest:
    """Reduce an IP (``kind="i"``) or account (``kind="a"``) to its key material.

    HMAC-SHA256 over ``kind`` and ``value`` under ``secret``. With an empty
    secret this is a plain keyed-by-nothing hash: fine for tests, but anyone
    holding a key can recover an IPv4 address by trying all of them, so
    production passes a secret (the same on every replica). Raises
    ``ValueError`` for an unknown ``kind``. Cost: one HMAC, about a microsecond.
    """
    if kind not in ("i", "a"):
        raise ValueError("kind must be 'i' or 'a'")
    message = kind.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
    return IdentityDigest(kind, hmac.new(secret, message, hashlib.sha256).hexdigest())


@dataclass(frozen=True, slots=True)
class BlockRule:
    """At ``threshold`` failures in the window, block for ``duration_seconds`` at ``level``."""

    threshold: int
    duration_seconds: int
    level: int


@dataclass(frozen=True, slots=True)
class FailureRules:
    """The numbers a store needs; built by the brute-force policy, passed with each call."""

    window_seconds: int = 24 * 3600
    #: Ascending thresholds; the highest one reached applies.
    blocks: tuple[BlockRule, ...] = ()
    #: Failures remembered per IP; more than the highest threshold changes nothing.
    max_tracked_failures: int = 64
    #: How long a successful sign-in from an IP exempts it from the account delay.
    known_ip_ttl_seconds: int = 30 * 24 * 3600
    max_known_ips: int = 16

    def __post_init__(self) -> None:
        thresholds = [rule.threshold for rule in self.blocks]
        if thresholds != sorted(thresholds) or any(t < 1 for t in thresholds):
            raise ValueError("block thresholds must be positive and ascending")
        if self.window_seconds < 1 or self.max_tracked_failures < max(thresholds, default=1):
            raise ValueError("window and max_tracked_failures must cover the thresholds")


@dataclass(frozen=True, slots=True)
class FailureSnapshot:
    """What a store knows about one (IP, account) pair at one instant (times in ms)."""

    ip_failures: int = 0
    ip_streak: int = 0
    ip_last_failure_ms: int = 0
    ip_blocked_until_ms: int = 0
    ip_block_level: int = 0
    account_streak: int = 0
    account_last_failure_ms: int = 0
    account_known_ip: bool = False


class AuthFailureStore(Protocol):
    """Counters of failed authentications per client IP and per target account.

    Every method raises :class:`~graphgate.server.errors.StoreUnavailable` when
    the backing store cannot answer, and nothing else on purpose.
    """

    async def check(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> FailureSnapshot:
        """Read both dimensions without changing them."""
        ...

    async def record_failure(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> FailureSnapshot:
        """Count one failure in both dimensions; return the state after it."""
        ...

    async def record_success(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> None:
        """End both streaks and remember the IP as known for the account."""
        ...

    async def forget_ip(self, ip: IdentityDigest) -> None:
        """Drop an IP's failures, streak and block (an operator's unblock)."""
        ...


def _ip_keys(ip: IdentityDigest) -> list[str]:
    tag = f"{_KEY_PREFIX}{{i.{ip.hexdigest}}}"
    return [f"{tag}:w", f"{tag}:s", f"{tag}:b"]


def _account_keys(account: IdentityDigest) -> list[str]:
    tag = f"{_KEY_PREFIX}{{a.{account.hexdigest}}}"
    return [f"{tag}:s", f"{tag}:k"]


@cache
def _script_text() -> str:
    return (
        resources.files("graphgate.server.stores")
        .joinpath("lua", "auth_failures.lua")
        .read_text(encoding="utf-8")
    )


def _snapshot(ip_reply: Any, account_reply: Any) -> FailureSnapshot:
    failures, streak, last, until, level = (int(v) for v in ip_reply)
    a_streak, a_last, known = (int(v) for v in account_reply)
    return FailureSnapshot(failures, streak, last, until, level, a_streak, a_last, bool(known))


class ValkeyAuthFailureStore:
    """:class:`AuthFailureStore` in Valkey; one round trip per call.

    ``client`` is a standalone ``valkey.asyncio.Valkey`` (the key layout is
    cluster-ready; a cluster client would need its own pipeline). Each call is
    bounded by ``timeout_seconds`` so a hung server costs a login at most that
    much before the guard falls back. The script is registered once and run by
    EVALSHA; a server that lost it (restart, SCRIPT FLUSH) gets it loaded again
    once, then the call is retried.
    """

    def __init__(self, client: Valkey, *, timeout_seconds: float = 0.5) -> None:
        self._client = client
        self._script = client.register_script(_script_text())
        self._timeout = timeout_seconds

    async def check(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> FailureSnapshot:
        """Read both dimensions (two read-only script calls, one round trip)."""
        ip_reply, account_reply = await self._run(
            (_ip_keys(ip), ["ip_check", now_ms, rules.window_seconds * 1000]),
            (
                _account_keys(account),
                [
                    "acct_check",
                    now_ms,
                    ip.hexdigest,
                    rules.known_ip_ttl_seconds * 1000,
                    rules.window_seconds * 1000,
                ],
            ),
        )
        return _snapshot(ip_reply, account_reply)

    async def record_failure(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> FailureSnapshot:
        """Count a failure in both dimensions; blocks are set by the script itself."""
        window_ms = rules.window_seconds * 1000
        block_args: list[int] = []
        for rule in rules.blocks:
            block_args += [int(rule.threshold), int(rule.duration_seconds) * 1000, int(rule.level)]
        ip_reply, account_reply = await self._run(
            (
                _ip_keys(ip),
                [
                    "ip_fail",
                    now_ms,
                    window_ms,
                    rules.max_tracked_failures,
                    len(rules.blocks),
                    *block_args,
                ],
            ),
            (
                _account_keys(account),
                [
                    "acct_fail",
                    now_ms,
                    ip.hexdigest,
                    rules.known_ip_ttl_seconds * 1000,
                    window_ms,
                ],
            ),
        )
        return _snapshot(ip_reply, account_reply)

    async def record_success(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> None:
        """End the streaks, remember the IP for the account."""
        await self._run(
            (_ip_keys(ip), ["ip_success", now_ms]),
            (
                _account_keys(account),
                [
                    "acct_success",
                    now_ms,
                    ip.hexdigest,
                    rules.known_ip_ttl_seconds * 1000,
                    rules.max_known_ips,
                ],
            ),
        )

    async def forget_ip(self, ip: IdentityDigest) -> None:
        """Drop an IP's failures, streak and block (an operator's unblock)."""
        try:
            await asyncio.wait_for(self._client.delete(*_ip_keys(ip)), self._timeout)
        except (ValkeyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(detail=f"Valkey auth failures: {exc}") from exc

    async def _run(self, *calls: tuple[list[str], list[Any]]) -> list[Any]:
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    return await self._pipeline(calls)
                except NoScriptError:
                    # The server forgot the script: load it once, then retry.
                    await self._client.script_load(self._script.script)
                    return await self._pipeline(calls)
        except (ValkeyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(
                detail=f"auth-failure store: {type(exc).__name__}: {exc}"
            ) from exc

    async def _pipeline(self, calls: tuple[tuple[list[str], list[Any]], ...]) -> list[Any]:
        # Plain EVALSHA in a non-transactional pipeline: valkey-py's Script
        # objects would add a SCRIPT EXISTS round trip to every pipeline.
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies


@dataclass(slots=True)
class _IpState:
    failures: deque[int] = field(default_factory=deque)
    streak: int = 0
    last_ms: int = 0
    blocked_until_ms: int = 0
    block_level: int = 0


@dataclass(slots=True)
class _AccountState:
    streak: int = 0
    last_ms: int = 0
    known: dict[str, int] = field(default_factory=dict)  # ip hexdigest -> last success ms


class MemoryAuthFailureStore:
    """:class:`AuthFailureStore` in this process: the same rules, no sharing, no persistence.

    At most ``max_identities`` IPs and as many accounts are tracked; the least
    recently used is forgotten first. That bound is what keeps a flood of
    spoofed or rotating addresses from exhausting memory, at the price that
    such a flood can also push an attacker's own entry out while Valkey is
    down. Never raises :class:`StoreUnavailable`. Cost: O(1) amortised per
    call plus expiry of old entries; no I/O.
    """

    def __init__(self, *, max_identities: int = 50_000) -> None:
        if max_identities < 1:
            raise ValueError("max_identities must be positive")
        self._max = max_identities
        self._ips: OrderedDict[str, _IpState] = OrderedDict()
        self._accounts: OrderedDict[str, _AccountState] = OrderedDict()

    def __len__(self) -> int:
        """Identities currently tracked (IPs plus accounts)."""
        return len(self._ips) + len(self._accounts)

    async def check(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> FailureSnapshot:
        """Read both dimensions."""
        ip_state = self._ip(ip, now_ms, rules, create=False)
        account_state = self._account(account, now_ms, rules, create=False)
        return self._snapshot(ip, ip_state, account_state, now_ms, rules)

    async def record_failure(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> FailureSnapshot:
        """Count a failure in both dimensions, blocking the IP at a threshold."""
        ip_state = self._ip(ip, now_ms, rules, create=True)
        assert ip_state is not None  # noqa: S101 - create=True always returns one
        ip_state.failures.append(now_ms)
        while len(ip_state.failures) > rules.max_tracked_failures:
            ip_state.failures.popleft()
        ip_state.streak += 1
        ip_state.last_ms = now_ms
        reached = [rule for rule in rules.blocks if len(ip_state.failures) >= rule.threshold]
        if reached:
            # As the script: never shorten or downgrade a running block.
            rule = reached[-1]
            ip_state.blocked_until_ms = max(
                ip_state.blocked_until_ms, now_ms + rule.duration_seconds * 1000
            )
            ip_state.block_level = max(ip_state.block_level, rule.level)

        account_state = self._account(account, now_ms, rules, create=True)
        assert account_state is not None  # noqa: S101
        account_state.streak += 1
        account_state.last_ms = now_ms
        return self._snapshot(ip, ip_state, account_state, now_ms, rules)

    async def record_success(
        self, ip: IdentityDigest, account: IdentityDigest, now_ms: int, rules: FailureRules
    ) -> None:
        """End both streaks; remember the IP as known for the account."""
        ip_state = self._ip(ip, now_ms, rules, create=False)
        if ip_state is not None:
            ip_state.streak = 0
        account_state = self._account(account, now_ms, rules, create=True)
        assert account_state is not None  # noqa: S101
        account_state.streak = 0
        account_state.last_ms = 0
        account_state.known[ip.hexdigest] = now_ms
        horizon = now_ms - rules.known_ip_ttl_seconds * 1000
        for digest, seen in list(account_state.known.items()):
            if seen <= horizon:
                del account_state.known[digest]
        while len(account_state.known) > rules.max_known_ips:
            oldest = min(account_state.known, key=account_state.known.__getitem__)
            del account_state.known[oldest]

    async def forget_ip(self, ip: IdentityDigest) -> None:
        """Drop an IP's failures, streak and block."""
        self._ips.pop(ip.hexdigest, None)

    def _ip(
        self, ip: IdentityDigest, now_ms: int, rules: FailureRules, *, create: bool
    ) -> _IpState | None:
        state = self._ips.get(ip.hexdigest)
        window_ms = rules.window_seconds * 1000
        if state is not None:
            while state.failures and state.failures[0] <= now_ms - window_ms:
                state.failures.popleft()
            # Valkey's TTLs: the streak lives a window after the last failure,
            # a block until its end.
            if state.last_ms and state.last_ms <= now_ms - window_ms:
                state.streak = 0
                state.last_ms = 0
            if state.blocked_until_ms <= now_ms:
                state.blocked_until_ms = 0
                state.block_level = 0
            if not state.failures and not state.streak and not state.blocked_until_ms:
                del self._ips[ip.hexdigest]
                state = None
        if state is None:
            if not create:
                return None
            state = _IpState()
            self._ips[ip.hexdigest] = state
            self._evict(self._ips)
        self._ips.move_to_end(ip.hexdigest)
        return state

    def _account(
        self, account: IdentityDigest, now_ms: int, rules: FailureRules, *, create: bool
    ) -> _AccountState | None:
        state = self._accounts.get(account.hexdigest)
        window_ms = rules.window_seconds * 1000
        if state is not None and state.last_ms and state.last_ms <= now_ms - window_ms:
            state.streak = 0
            state.last_ms = 0
        if state is None:
            if not create:
                return None
            state = _AccountState()
            self._accounts[account.hexdigest] = state
            self._evict(self._accounts)
        self._accounts.move_to_end(account.hexdigest)
        return state

    def _evict(self, table: OrderedDict[str, Any]) -> None:
        while len(table) > self._max:
            table.popitem(last=False)

    @staticmethod
    def _snapshot(
        ip: IdentityDigest,
        ip_state: _IpState | None,
        account_state: _AccountState | None,
        now_ms: int,
        rules: FailureRules,
    ) -> FailureSnapshot:
        known = False
        if account_state is not None:
            seen = account_state.known.get(ip.hexdigest)
            known = seen is not None and seen > now_ms - rules.known_ip_ttl_seconds * 1000
        return FailureSnapshot(
            ip_failures=len(ip_state.failures) if ip_state else 0,
            ip_streak=ip_state.streak if ip_state else 0,
            ip_last_failure_ms=ip_state.last_ms if ip_state else 0,
            ip_blocked_until_ms=ip_state.blocked_until_ms if ip_state else 0,
            ip_block_level=ip_state.block_level if ip_state else 0,
            account_streak=account_state.streak if account_state else 0,
            account_last_failure_ms=account_state.last_ms if account_state else 0,
            account_known_ip=known,
        )
