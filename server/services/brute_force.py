"""Brute-force protection for sign-in (CONTROLS.md C6).

Two dimensions, both counted by an :class:`~graphgate.server.stores.auth_failures.AuthFailureStore`:

* **Client IP** (IPv6 by /64: one subscriber holds a whole /64, and counting
  single addresses there would give an attacker 2**64 fresh counters). After
  the n-th consecutive failure the next attempt waits ``delays_seconds[n-1]``
  (1 s, 2 s, 5 s, 10 s, 30 s, 1 min, 5 min, then 15 min for every further
  failure). Failures are also counted over a 24 h sliding window, which sets
  the threat level: LOW below 5, MEDIUM from 5 (each failure at that level
  blocks the IP for 15 min), HIGH from 10 (1 h), CRITICAL from 20 (24 h).
  Blocks expire by themselves.
* **Target account** (the normalised e-mail, whether or not such a user
  exists, so the answer reveals nothing). Consecutive failures against one
  account, from anywhere, get the same delay ladder, which caps a distributed
  guesser at about 4 attempts an hour once it runs. It never blocks and never
  escalates the threat level, and an IP that signed in to the account
  successfully within ``known_ip_ttl_seconds`` is exempt from the account's
  delay: otherwise anyone could keep a user out by failing on purpose every
  15 minutes (that IP is still held to its own IP limits).

On success the account's streak ends and the IP's *delay streak* ends too, but
**the IP's 24 h window does not decay**: failures already counted still count
towards MEDIUM/HIGH/CRITICAL and a running block is not lifted. Otherwise an
attacker holding one valid account could sign in to it between guesses and
launder their failures; the window holds every IP to 20 failures (about 11 h
at the fastest the blocks allow) before a 24 h block, whatever it interleaves.

A refusal is a :class:`Verdict` with ``allowed=False``; the caller raises with
:meth:`BruteForceGuard.raise_if_refused` (``RateLimited``: RESOURCE_EXHAUSTED,
``retry-after``, the threat level in metadata). The caller must record a
failure for an unknown e-mail exactly as for a wrong password.

If the store cannot answer (Valkey down or slow), the guard degrades to a
per-process :class:`~graphgate.server.stores.auth_failures.MemoryAuthFailureStore`
with the same rules, logging once per transition, and probes the store again
every ``probe_interval_seconds``: sign-in keeps working, with per-process
protection. Counters gathered while degraded stay in that process.

Security: ``ip`` and ``account`` are attacker-controlled text; they are
normalised, then reduced to keyed hashes before any store sees them, and never
logged. Time comes from the injected ``clock`` only.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from graphgate.server.errors import QuotaViolation, RateFigures, RateLimited, StoreUnavailable
from graphgate.server.services.client_ip import parse_ip
from graphgate.server.stores.auth_failures import (
    AuthFailureStore,
    BlockRule,
    FailureRules,
    FailureSnapshot,
    IdentityDigest,
    MemoryAuthFailureStore,
    identity_digest,
)

__all__ = [
    "BruteForceGuard",
    "BruteForcePolicy",
    "ThreatLevel",
    "Verdict",
    "normalize_account",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ThreatLevel(enum.IntEnum):
    """How suspicious a client IP is; ordered, and named as the audit's risk levels (C20)."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    CRITICAL = 3


@dataclass(frozen=True)
class BruteForcePolicy:
    """The numbers of C6; every one is a setting."""

    #: Wait after the n-th consecutive failure; the last entry repeats (the cap).
    delays_seconds: tuple[int, ...] = (1, 2, 5, 10, 30, 60, 300, 900)
    #: The same for the target-account dimension.
    account_delays_seconds: tuple[int, ...] = (1, 2, 5, 10, 30, 60, 300, 900)
    window_seconds: int = 24 * 3600
    medium_after: int = 5
    medium_block_seconds: int = 15 * 60
    high_after: int = 10
    high_block_seconds: int = 3600
    critical_after: int = 20
    critical_block_seconds: int = 24 * 3600
    #: A successful sign-in from an IP exempts it from that account's delay this long.
    known_ip_ttl_seconds: int = 30 * 24 * 3600
    max_known_ips: int = 16
    #: IPv6 clients are counted per prefix of this length.
    ipv6_prefix_length: int = 64
    rules: FailureRules = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.delays_seconds or not self.account_delays_seconds:
            raise ValueError("delay ladders must not be empty")
        if any(d < 0 for d in (*self.delays_seconds, *self.account_delays_seconds)):
            raise ValueError("delays must not be negative")
        if not 0 <= self.ipv6_prefix_length <= 128:
            raise ValueError("ipv6_prefix_length must be within 0..128")
        rules = FailureRules(
            window_seconds=self.window_seconds,
            blocks=(
                BlockRule(self.medium_after, self.medium_block_seconds, ThreatLevel.MEDIUM),
                BlockRule(self.high_after, self.high_block_seconds, ThreatLevel.HIGH),
                BlockRule(self.critical_after, self.critical_block_seconds, ThreatLevel.CRITICAL),
            ),
            max_tracked_failures=max(64, self.critical_after),
            known_ip_ttl_seconds=self.known_ip_ttl_seconds,
            max_known_ips=self.max_known_ips,
        )
        object.__setattr__(self, "rules", rules)

    def level_for(self, failures: int) -> ThreatLevel:
        """The threat level of an IP with ``failures`` failures in the window."""
        if failures >= self.critical_after:
            return ThreatLevel.CRITICAL
        if failures >= self.high_after:
            return ThreatLevel.HIGH
        if failures >= self.medium_after:
            return ThreatLevel.MEDIUM
        return ThreatLevel.LOW


def _delay(ladder: tuple[int, ...], streak: int) -> int:
    return ladder[min(streak, len(ladder)) - 1] if streak > 0 else 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer for one (IP, account) pair.

    ``allowed`` says whether an attempt may be made now; if not, retry after
    ``retry_after_seconds``. ``threat_level`` and ``failures`` describe the IP
    (failures in the window); ``account_failures`` is the account's current
    streak. ``limited_by`` names what refused (``ip_block``, ``ip_delay`` or
    ``account_delay``) for the server log and audit, never for the client.
    ``degraded`` is true when the answer came from the per-process fallback.
    """

    allowed: bool
    retry_after_seconds: int
    threat_level: ThreatLevel
    failures: int
    account_failures: int = 0
    limited_by: str = ""
    degraded: bool = False


class BruteForceGuard:
    """Counts failed sign-ins per client IP and per account, and refuses what exceeds C6.

    ``store`` is the shared store (Valkey); ``fallback`` serves while it cannot
    answer (default: a fresh bounded in-memory store). ``identity_secret`` keys
    the hashes that stand for IPs and accounts in the store; give the same one
    to every replica. ``clock`` returns Unix seconds and is the only time used.

    Every method costs one store round trip (or none, while degraded) and
    raises nothing on purpose: a failing store is absorbed by the fallback.
    """

    def __init__(
        self,
        store: AuthFailureStore,
        *,
        clock: Callable[[], float] = time.time,
        fallback: AuthFailureStore | None = None,
        policy: BruteForcePolicy | None = None,
        identity_secret: bytes = b"",
        probe_interval_seconds: float = 5.0,
    ) -> None:
        self._store = store
        # Not `fallback or ...`: an empty memory store is falsy (it has __len__).
        self._fallback: AuthFailureStore = (
            MemoryAuthFailureStore() if fallback is None else fallback
        )
        self._clock = clock
        self._policy = policy if policy is not None else BruteForcePolicy()
        self._secret = identity_secret
        self._probe_interval = probe_interval_seconds
        self._degraded = False
        self._next_probe = 0.0

    @property
    def policy(self) -> BruteForcePolicy:
        """The policy in force."""
        return self._policy

    @property
    def degraded(self) -> bool:
        """True while the per-process fallback serves instead of the shared store."""
        return self._degraded

    async def check(self, ip: str, account: str) -> Verdict:
        """May ``ip`` attempt to sign in to ``account`` now? Changes nothing.

        Call before verifying the password; on ``allowed=False`` refuse without
        verifying (see :meth:`raise_if_refused`). Cost: one store round trip.
        """
        ip_id, account_id = self._identities(ip, account)
        now_ms = self._now_ms()
        rules = self._policy.rules
        snapshot, degraded = await self._call(
            lambda store: store.check(ip_id, account_id, now_ms, rules)
        )
        return self._decide(snapshot, now_ms, degraded)

    async def enforce(self, ip: str, account: str) -> Verdict:
        """:meth:`check`, raising ``RateLimited`` on a refusal; returns the allowing verdict."""
        verdict = await self.check(ip, account)
        self.raise_if_refused(verdict)
        return verdict

    async def record_failure(self, ip: str, account: str) -> Verdict:
        """Count a failed sign-in (wrong password *or* unknown account).

        Returns the state after it: ``allowed`` is about the next attempt.
        Cost: one store round trip.
        """
        ip_id, account_id = self._identities(ip, account)
        now_ms = self._now_ms()
        rules = self._policy.rules
        snapshot, degraded = await self._call(
            lambda store: store.record_failure(ip_id, account_id, now_ms, rules)
        )
        return self._decide(snapshot, now_ms, degraded)

    async def record_success(self, ip: str, account: str) -> None:
        """Record a successful sign-in: ends the account's streak and the IP's delay.

        The IP's window and any running block stay (see the module docstring),
        and ``ip`` becomes known for ``account``. Cost: one store round trip.
        """
        ip_id, account_id = self._identities(ip, account)
        now_ms = self._now_ms()
        rules = self._policy.rules
        await self._call(lambda store: store.record_success(ip_id, account_id, now_ms, rules))

    def raise_if_refused(self, verdict: Verdict) -> None:
        """Raise ``RateLimited`` (RESOURCE_EXHAUSTED) if ``verdict`` refuses.

        The error carries ``retry-after`` (through its figures), the threat
        level in ``ErrorInfo`` metadata, and a generic message; what refused
        stays in ``detail`` for the server log.
        """
        if verdict.allowed:
            return
        retry = max(1, verdict.retry_after_seconds)
        raise RateLimited(
            public_message="too many failed sign-in attempts, retry later",
            reason="TOO_MANY_FAILED_ATTEMPTS",
            detail=(
                f"brute-force guard: {verdict.limited_by}, {verdict.failures} IP failures in "
                f"window, account streak {verdict.account_failures}, "
                f"threat {verdict.threat_level.name}, degraded {verdict.degraded}"
            ),
            metadata={"threat_level": verdict.threat_level.name, "retry_after": str(retry)},
            figures=RateFigures(
                limit=self._policy.medium_after,
                remaining=0,
                reset_seconds=retry,
                retry_after_seconds=retry,
            ),
            quota_violations=(
                QuotaViolation(subject="sign-in", description="too many failed attempts"),
            ),
        )

    async def unblock(self, ip: str) -> None:
        """Forget an address's failures and lift its block, in the shared store
        and in this process's fallback. Cost: one store round trip."""
        ip_id, _ = self._identities(ip, "")
        await self._fallback.forget_ip(ip_id)
        await self._store.forget_ip(ip_id)

    # -- internals ---------------------------------------------------------

    def _now_ms(self) -> int:
        return math.floor(self._clock() * 1000)

    def _identities(self, ip: str, account: str) -> tuple[IdentityDigest, IdentityDigest]:
        return (
            identity_digest("i", self._ip_bucket(ip), secret=self._secret),
            identity_digest("a", normalize_account(account), secret=self._secret),
        )

    def _ip_bucket(self, ip: str) -> str:
        address = parse_ip(ip)
        if address is None:
            # "unix", "unknown" or junk: one shared bucket per spelling, bounded.
            return "?" + ip.strip().lower()[:64]
        if isinstance(address, ipaddress.IPv6Address):
            prefix = self._policy.ipv6_prefix_length
            return str(ipaddress.IPv6Network((address, prefix), strict=False))
        return str(address)

    async def _call(
        self, operation: Callable[[AuthFailureStore], Awaitable[_T]]
    ) -> tuple[_T, bool]:
        now = self._clock()
        if self._degraded:
            if now < self._next_probe:
                return await operation(self._fallback), True
            # One probe at a time: calls arriving while it runs use the fallback
            # instead of all waiting on a store that may still hang.
            self._next_probe = now + self._probe_interval
        try:
            result = await operation(self._store)
        except StoreUnavailable as exc:
            self._next_probe = now + self._probe_interval
            if not self._degraded:
                self._degraded = True
                _log.warning(
                    "auth-failure store unavailable; brute-force protection degraded to "
                    "this process until it answers again (%s)",
                    exc.detail,
                )
            return await operation(self._fallback), True
        if self._degraded:
            self._degraded = False
            _log.warning("auth-failure store answers again; brute-force protection shared")
        return result, False

    def _decide(self, snapshot: FailureSnapshot, now_ms: int, degraded: bool) -> Verdict:
        policy = self._policy
        level = policy.level_for(snapshot.ip_failures)
        waits: list[tuple[int, str]] = []
        if snapshot.ip_blocked_until_ms > now_ms:
            level = max(level, ThreatLevel(snapshot.ip_block_level))
            waits.append((snapshot.ip_blocked_until_ms - now_ms, "ip_block"))
        ip_delay = _delay(policy.delays_seconds, snapshot.ip_streak)
        if ip_delay:
            waits.append((snapshot.ip_last_failure_ms + ip_delay * 1000 - now_ms, "ip_delay"))
        account_delay = _delay(policy.account_delays_seconds, snapshot.account_streak)
        if account_delay and not snapshot.account_known_ip:
            waits.append(
                (snapshot.account_last_failure_ms + account_delay * 1000 - now_ms, "account_delay")
            )
        # On a tie the first listed wins: a block says more than a delay.
        wait_ms, limited_by = max(waits, key=lambda wait: wait[0], default=(0, ""))
        if wait_ms <= 0:
            wait_ms, limited_by = 0, ""
        return Verdict(
            allowed=wait_ms <= 0,
            retry_after_seconds=math.ceil(wait_ms / 1000),
            threat_level=level,
            failures=snapshot.ip_failures,
            account_failures=snapshot.account_streak,
            limited_by=limited_by,
            degraded=degraded,
        )


def normalize_account(account: str) -> str:
    """The form of an e-mail address that is counted: NFKC, trimmed, case-folded.

    ``Alice@Example.com`` and ``alice@example.com `` are one account to the
    guard, so case games do not buy fresh counters.
    """
    return unicodedata.normalize("NFKC", account).strip().casefold()
