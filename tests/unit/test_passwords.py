"""C8: the password policy (zxcvbn score) and bcrypt hashing off the event loop.

bcrypt runs at cost 4 where the cost does not matter; one test proves the
default is 14.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable

import bcrypt
import pytest
from zxcvbn import zxcvbn

from graphgate.server.errors import InvalidArgument, Overloaded
from graphgate.server.services.passwords import (
    API_KEY_COST,
    PasswordHasher,
    PasswordPolicy,
    check_password,
    strength_score,
)

POLICY = PasswordPolicy()
STRONG = "Zq8#mW2!pL5@vN9^"


@pytest.fixture
async def hasher() -> AsyncIterator[PasswordHasher]:
    h = PasswordHasher(cost=4, pepper=b"test-pepper")
    yield h
    h.close()


# -- policy ----------------------------------------------------------------


def test_strong_password_is_acceptable() -> None:
    result = check_password(STRONG, policy=POLICY, email="jane.doe@example.com", name="Jane Doe")
    assert result.acceptable, result.problems
    assert result.problems == ()
    assert 80 <= result.score <= 100


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Sh0rt!pass", "Use at least 12 characters."),
        ("zq8#mw2!pl5@vn9^", "Add an upper-case letter."),
        ("ZQ8#MW2!PL5@VN9^", "Add a lower-case letter."),
        ("Zqx#mWy!pLz@vNw^", "Add a digit."),
        ("Zq8umW2ypL5kvN9j", "Add a special character, such as a symbol or a space."),
        ("Aa1!Aa1!Aa1!Aa1!", "Use at least 8 different characters."),
        ("Zq8#mW2!\tpL5@vN9^", "Remove control characters such as tabs and line breaks."),
        ("Zq8#mW2!\x00pL5@vN9^", "Remove control characters such as tabs and line breaks."),
        (STRONG + "x" * 120, "Use at most 128 characters."),
    ],
)
def test_each_rule_is_reported(password: str, problem: str) -> None:
    result = check_password(password, policy=POLICY)
    assert not result.acceptable
    assert problem in result.problems


@pytest.mark.parametrize(
    "password",
    [
        "Password123!",  # common password with decorations
        "Qwerty123456!",  # keyboard walk
        "Abcdefghijklmnopqrstuvwxyz1!",  # a sequence, decorated
        "0123456789Abc!",  # sequences
        "Aa1!Aa1!Aa1!Aa1!Aa1!",  # repeats
        "P@ssw0rd2024!",  # l33t common password
    ],
)
def test_guessable_passwords_fail_on_score(password: str) -> None:
    """C8: sequences, repeats, keyboard walks and common passwords score below 60."""
    result = check_password(password, policy=POLICY)
    assert result.score < 60
    assert not result.acceptable
    assert result.problems


def test_users_own_data_is_refused() -> None:
    result = check_password(
        "Jane.Doe1985!x", policy=POLICY, email="jane.doe@example.com", name="Jane Doe"
    )
    assert "Do not use your name or e-mail address in your password." in result.problems
    assert not result.acceptable
    # The same password for someone else has no such problem.
    other = check_password("Jane.Doe1985!x", policy=POLICY, email="bob@example.org", name="Bob")
    assert "Do not use your name or e-mail address in your password." not in other.problems


def test_score_mapping_follows_zxcvbn_buckets() -> None:
    # 20 points per zxcvbn bucket: 10^3, 10^6, 10^8, 10^10 guesses start 20, 40, 60, 80.
    assert strength_score(0.0) == 0
    assert strength_score(2.99) == 19
    assert strength_score(3.0) == 20
    assert strength_score(6.0) == 40
    assert strength_score(7.99) == 59
    assert strength_score(8.0) == 60
    assert strength_score(9.99) == 79
    assert strength_score(10.0) == 80
    assert strength_score(15.0) == 90
    assert strength_score(20.0) == 100
    assert strength_score(300.0) == 100
    assert strength_score(-1.0) == 0
    scores = [strength_score(x / 10) for x in range(0, 250)]
    assert scores == sorted(scores)


def test_score_agrees_with_zxcvbn_where_it_is_not_padded() -> None:
    for password in ("Tr0ub4dour&3", "Zq8#mW2!pL5@", "Password123!", "Winter!2023Ab"):
        at_least_3 = zxcvbn(password)["score"] >= 3
        assert (check_password(password, policy=POLICY).score >= 60) == at_least_3, password


def test_long_password_is_analysed_quickly() -> None:
    # zxcvbn on 128 random characters takes seconds; the policy caps its input.
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*"
    password = "".join(secrets.choice(alphabet) for _ in range(128))
    started = time.perf_counter()
    result = check_password(password, policy=POLICY)
    assert time.perf_counter() - started < 1.0
    assert result.score >= 60


def test_enormous_input_costs_nothing() -> None:
    result = check_password("A1!a" * 1_000_000, policy=POLICY)
    assert not result.acceptable
    assert result.score == 0


def test_policy_validates_itself() -> None:
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=20, max_length=10)
    with pytest.raises(ValueError, match="min_score"):
        PasswordPolicy(min_score=101)


# -- hashing ---------------------------------------------------------------


async def test_default_cost_is_14() -> None:
    """C8: bcrypt with 14 rounds by default (this test pays for one real hash)."""
    hasher = PasswordHasher()
    try:
        hashed = await hasher.hash(STRONG)
    finally:
        hasher.close()
    assert hashed.startswith("$2b$14$")
    assert len(hashed) == 60


def test_api_key_cost_is_12() -> None:
    hasher = PasswordHasher(cost=API_KEY_COST)
    try:
        assert hasher.cost == 12
    finally:
        hasher.close()


async def test_hash_and_verify_round_trip(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash(STRONG)
    assert hashed.startswith("$2b$04$")
    assert await hasher.verify(STRONG, hashed)
    assert not await hasher.verify(STRONG + "x", hashed)
    # Two hashes of one password differ (salt).
    assert await hasher.hash(STRONG) != hashed


async def test_no_truncation_at_72_bytes(hasher: PasswordHasher) -> None:
    """C8: passwords equal in their first 72 bytes are still different passwords."""
    base = "Ab1!" + "x" * 80
    hashed = await hasher.hash(base + "A")
    assert await hasher.verify(base + "A", hashed)
    assert not await hasher.verify(base + "B", hashed)
    # Multi-byte text: 128 characters are 384 bytes of UTF-8, every one counts.
    wide = "語" * 127
    hashed = await hasher.hash(wide + "1")
    assert await hasher.verify(wide + "1", hashed)
    assert not await hasher.verify(wide + "2", hashed)


async def test_pepper_is_part_of_the_hash() -> None:
    first = PasswordHasher(cost=4, pepper=b"one")
    second = PasswordHasher(cost=4, pepper=b"two")
    try:
        hashed = await first.hash(STRONG)
        assert await first.verify(STRONG, hashed)
        assert not await second.verify(STRONG, hashed)
    finally:
        first.close()
        second.close()


async def test_normalised_spellings_match(hasher: PasswordHasher) -> None:
    # "é" typed as one code point or as e + combining accent is one password.
    hashed = await hasher.hash("Caf\u00e9-Noir-2024!")
    assert await hasher.verify("Cafe\u0301-Noir-2024!", hashed)


async def test_unusable_input(hasher: PasswordHasher) -> None:
    with pytest.raises(InvalidArgument):
        await hasher.hash("x" * 5000)
    with pytest.raises(InvalidArgument):
        await hasher.hash("bad\ud800surrogate")
    assert not await hasher.verify(STRONG, "not a bcrypt hash")
    assert not await hasher.verify("x" * 5000, await hasher.hash(STRONG))


async def test_verify_dummy_costs_what_verify_costs() -> None:
    """C6: an unknown e-mail takes as long as a wrong password."""
    hasher = PasswordHasher(cost=8, max_concurrency=1)
    try:
        hashed = await hasher.hash(STRONG)
        # Same bcrypt cost in the dummy hash: the work is the same by construction.
        assert hasher._dummy[:7] == hashed.encode()[:7]

        async def timed(call: Awaitable[bool]) -> float:
            started = time.perf_counter()
            await call
            return time.perf_counter() - started

        real: list[float] = []
        dummy: list[float] = []
        for _ in range(7):  # interleaved, best of seven: robust on a busy machine
            real.append(await timed(hasher.verify("wrong", hashed)))
            dummy.append(await timed(hasher.verify_dummy("wrong")))
        assert await hasher.verify_dummy(STRONG) is False
    finally:
        hasher.close()
    assert 0.5 < min(dummy) / min(real) < 2.0, (real, dummy)


async def test_needs_rehash(hasher: PasswordHasher) -> None:
    hashed = await hasher.hash(STRONG)
    assert not hasher.needs_rehash(hashed)
    stronger = PasswordHasher(cost=5)
    try:
        assert stronger.needs_rehash(hashed)
        assert stronger.needs_rehash("garbage")
    finally:
        stronger.close()


async def test_waiting_line_is_bounded() -> None:
    """C8: beyond max_waiting, calls are refused at once instead of queueing."""
    hasher = PasswordHasher(cost=8, max_concurrency=1, max_waiting=1)
    try:
        results = await asyncio.gather(
            *(hasher.hash(STRONG) for _ in range(4)), return_exceptions=True
        )
    finally:
        hasher.close()
    refused = [r for r in results if isinstance(r, Overloaded)]
    done = [r for r in results if isinstance(r, str)]
    assert len(done) == 2  # one running, one waiting
    assert len(refused) == 2
    assert refused[0].retry_after_seconds > 0


async def test_concurrency_is_bounded() -> None:
    """C8: never more bcrypt threads than max_concurrency, however many callers."""
    hasher = PasswordHasher(cost=4, max_concurrency=2, max_waiting=100)
    lock = threading.Lock()
    running = 0
    peak = 0

    def observed_hash(secret: bytes, salt: bytes) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return bcrypt.hashpw(secret, salt)

    try:
        # The pool's own entry point, with an observable function in place of bcrypt.
        results = await asyncio.gather(
            *(hasher._run(observed_hash, b"x", bcrypt.gensalt(4)) for _ in range(10))
        )
    finally:
        hasher.close()
    assert len(results) == 10
    assert peak == 2


async def test_cancelled_caller_keeps_its_slot_until_the_thread_ends() -> None:
    hasher = PasswordHasher(cost=12, max_concurrency=1, max_waiting=0)
    try:
        task = asyncio.create_task(hasher.hash(STRONG))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The thread still runs: the slot is still taken, the line has no room.
        with pytest.raises(Overloaded):
            await hasher.hash(STRONG)
    finally:
        hasher.close()
