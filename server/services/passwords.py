"""Passwords (CONTROLS.md C8): the policy check and bcrypt hashing off the event loop.

Security: passwords are the most sensitive text the service sees. They are
never logged, never part of an error, never stored except as bcrypt hashes.
Hashing and verifying run in a dedicated thread pool with bounded concurrency
and a bounded waiting line (:class:`~graphgate.server.errors.Overloaded` beyond
it), so a sign-in storm is refused in microseconds instead of queueing without
bound behind seconds of bcrypt. Unknown accounts pay the same price through
:meth:`PasswordHasher.verify_dummy`, so timing does not reveal which e-mails
exist. :func:`check_password` bounds its own cost: zxcvbn's running time
explodes on long random input (2 s for 128 characters, measured), so it looks
at the first ``analysis_max_chars`` characters only, which can only make the
estimate more cautious, never kinder.

**bcrypt's 72 bytes.** bcrypt reads at most 72 bytes of its input and older
libraries silently dropped the rest (bcrypt 5 refuses instead). Refusing
passwords over 72 bytes would contradict the published policy (128
characters, and 72 bytes are only 18 characters of some scripts), so every
password is *pre-hashed*: NFKC-normalised (one password, one spelling, however
it was typed), encoded as UTF-8, HMAC-SHA256 under the server's *pepper*, and
base64-encoded (44 bytes, never a NUL, which some bcrypt implementations treat
as the end). Every character counts; the pepper, kept outside the database,
means a stolen table alone cannot be attacked offline; and a keyed HMAC rather
than a bare SHA-256 defeats "hash shucking" (testing the bcrypt hashes against
leaked unsalted SHA-256 lists). Changing the pepper invalidates every hash, so
it is configured once per deployment (an empty pepper is allowed and still
avoids truncation).

**Score.** zxcvbn splits a password into the patterns an attacker would try
(dictionary words, l33t, sequences, repeats, keyboard walks, dates, the
user's own data) and estimates the guesses needed; its 0-4 score buckets
that estimate at 10^3, 10^6, 10^8 and 10^10 guesses. Our 0-100 score keeps
those buckets, 20 points each, and interpolates inside a bucket in
proportion to ``log10(guesses)`` between its edges (0, 3, 6, 8, 10, and 20
for the open top bucket, capped at 100). So ``score >= 60`` means
"zxcvbn score >= 3" (about 10^8 guesses: online guessing is hopeless) and 80
is zxcvbn's top bucket. One deliberate difference: zxcvbn adds 10^4 per
extra pattern (a bonus for the attacker not knowing the structure), which
alone lifts any three-part password to 10^8; with the policy demanding four
character classes most passwords have three parts, so
``Abcdefghijklmnopqrstuvwxyz1!`` would pass. Our estimate is the smaller of
zxcvbn's and its product of pattern guesses without that bonus; that is the
only change, and it can only lower a score.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import bcrypt
from zxcvbn import zxcvbn

from graphgate.server.errors import InvalidArgument, Overloaded

__all__ = [
    "API_KEY_COST",
    "PASSWORD_COST",
    "PasswordCheck",
    "PasswordHasher",
    "PasswordPolicy",
    "check_password",
    "strength_score",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: bcrypt cost for passwords (C8): about one second per hash on the reference machine.
PASSWORD_COST = 14
#: bcrypt cost for API keys (C5): keys are 256 random bits, the cost only slows a table thief.
API_KEY_COST = 12

# zxcvbn's bucket edges in log10(guesses), plus an upper edge for the open top bucket.
_BUCKET_EDGES = (0.0, 3.0, 6.0, 8.0, 10.0, 20.0)
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Longer input is refused before any work: the policy allows 128 characters,
# and normalising or MACing megabytes on the event loop is a cheap DoS.
_MAX_INPUT_CHARS = 1024
# zxcvbn keeps the user inputs in a module-level dictionary while it runs, so
# two threads analysing at once would see each other's e-mail and name.
_ZXCVBN_LOCK = threading.Lock()


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy (C8); lengths count characters after NFKC."""

    min_length: int = 12
    max_length: int = 128
    require_upper: bool = True
    require_lower: bool = True
    require_digit: bool = True
    #: Anything that is not a letter or a digit counts as special, a space included.
    require_special: bool = True
    min_distinct: int = 8
    #: 0-100, see the module docstring; 60 means zxcvbn score 3 or more.
    min_score: int = 60
    #: zxcvbn analyses at most this many leading characters (bounds its cost).
    analysis_max_chars: int = 40

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= _MAX_INPUT_CHARS:
            raise ValueError("need 1 <= min_length <= max_length <= 1024")
        if not 0 <= self.min_score <= 100:
            raise ValueError("min_score must be within 0..100")
        if not 8 <= self.analysis_max_chars <= 64:
            raise ValueError("analysis_max_chars must be within 8..64")


@dataclass(frozen=True)
class PasswordCheck:
    """The verdict on a candidate password; ``problems`` are short sentences for the user."""

    score: int
    acceptable: bool
    problems: tuple[str, ...]


def strength_score(guesses_log10: float) -> int:
    """Map ``log10(guesses)`` to 0-100 on zxcvbn's score buckets (see the module docstring)."""
    bucket = 0
    while bucket < 4 and guesses_log10 >= _BUCKET_EDGES[bucket + 1]:
        bucket += 1
    low, high = _BUCKET_EDGES[bucket], _BUCKET_EDGES[bucket + 1]
    fraction = min(max((guesses_log10 - low) / (high - low), 0.0), 1.0)
    points = 20 * bucket + int(20 * fraction)
    return min(points, 100 if bucket == 4 else 20 * bucket + 19)


def _user_inputs(email: str, name: str) -> list[str]:
    """The user's own data zxcvbn should treat as a dictionary: e-mail, its parts, name."""
    inputs: list[str] = []
    email = unicodedata.normalize("NFKC", email).strip().casefold()
    name = unicodedata.normalize("NFKC", name).strip().casefold()
    if email:
        local, _, domain = email.partition("@")
        inputs += [email, local, *re.split(r"[._+\-]+", local)]
        inputs += domain.split(".")[:-1]  # "example" of example.com; not the TLD
    if name:
        inputs += [name, *re.split(r"[\s._\-']+", name)]
    # Short fragments ("jo", "de") would flag half of all passwords.
    return sorted({item for item in inputs if len(item) >= 3})


def _analyse(candidate: str, user_inputs: list[str], max_chars: int) -> tuple[float, str]:
    """``(log10 of the guesses estimate, zxcvbn's warning)`` for ``candidate``."""
    with _ZXCVBN_LOCK:
        result: dict[str, Any] = zxcvbn(
            candidate[:max_chars], user_inputs=user_inputs, max_length=max_chars
        )
    patterns = result.get("sequence") or []
    # zxcvbn's estimate is l! * product(pattern guesses) + 10^4^(l-1); the
    # estimate without that additive term (see the module docstring).
    product_log10 = math.log10(math.factorial(max(len(patterns), 1))) + sum(
        math.log10(max(float(match["guesses"]), 1.0)) for match in patterns
    )
    warning = str(result.get("feedback", {}).get("warning") or "")
    return min(float(result["guesses_log10"]), product_log10), warning


def check_password(
    password: str, *, policy: PasswordPolicy, email: str = "", name: str = ""
) -> PasswordCheck:
    """Check a candidate password against ``policy``; never raises for any input.

    ``email`` and ``name`` are the user's (they must not appear in the password).
    The password is judged in the form that is hashed (NFKC). Control
    characters are refused. Cost: up to about 50 ms of CPU (zxcvbn, measured on
    40 random characters), serialised by a lock; call it through
    ``asyncio.to_thread`` from async code.
    """
    if len(password) > _MAX_INPUT_CHARS:
        return PasswordCheck(0, False, (f"Use at most {policy.max_length} characters.",))
    candidate = unicodedata.normalize("NFKC", password)
    problems: list[str] = []
    if len(candidate) < policy.min_length:
        problems.append(f"Use at least {policy.min_length} characters.")
    if len(candidate) > policy.max_length:
        problems.append(f"Use at most {policy.max_length} characters.")
    if policy.require_upper and not any(c.isupper() for c in candidate):
        problems.append("Add an upper-case letter.")
    if policy.require_lower and not any(c.islower() for c in candidate):
        problems.append("Add a lower-case letter.")
    if policy.require_digit and not any(c.isdecimal() for c in candidate):
        problems.append("Add a digit.")
    if policy.require_special and not any(not c.isalnum() for c in candidate):
        problems.append("Add a special character, such as a symbol or a space.")
    if len(set(candidate)) < policy.min_distinct:
        problems.append(f"Use at least {policy.min_distinct} different characters.")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in candidate):
        # Cc: tabs, line breaks, NUL, escapes; Cs: lone surrogates, not even UTF-8.
        problems.append("Remove control characters such as tabs and line breaks.")

    inputs = _user_inputs(email, name)
    folded = candidate.casefold()
    if any(item in folded or item[::-1] in folded for item in inputs):
        problems.append("Do not use your name or e-mail address in your password.")

    score = 0
    if candidate and len(candidate) <= policy.max_length:
        guesses_log10, warning = _analyse(candidate, inputs, policy.analysis_max_chars)
        score = strength_score(guesses_log10)
        if score < policy.min_score:
            problems.append(warning or "This password is too easy to guess.")
    return PasswordCheck(score=score, acceptable=not problems, problems=tuple(problems))


def _dummy_hash(cost: int) -> bytes:
    # A well-formed hash with a random salt: checkpw costs exactly what a real
    # verify costs (it recomputes from salt and cost, then compares), and
    # making it needs no bcrypt work at all, so no first-call penalty.
    tail = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
    return bcrypt.gensalt(cost) + tail.encode("ascii")


class PasswordHasher:
    """bcrypt behind a bounded thread pool, with HMAC pre-hashing (see the module docstring).

    ``cost`` is bcrypt's log2 rounds: :data:`PASSWORD_COST` (14) for passwords,
    :data:`API_KEY_COST` (12) for API keys; tests pass 4. ``pepper`` keys the
    pre-hash; every replica needs the same one. At most ``max_concurrency``
    hashes run at once (default: one less than the number of cores, at least
    one) and at most
    ``max_waiting`` more wait (default: two per slot); a call beyond that
    raises ``Overloaded`` at once, safe to retry after
    ``overload_retry_after_seconds``. Call :meth:`close` at shutdown.
    """

    def __init__(
        self,
        *,
        cost: int = PASSWORD_COST,
        pepper: bytes = b"",
        max_concurrency: int | None = None,
        max_waiting: int | None = None,
        overload_retry_after_seconds: float = 2.0,
    ) -> None:
        if not 4 <= cost <= 31:
            raise ValueError("bcrypt cost must be within 4..31")
        # One core stays free for the event loop: a sign-in storm must not
        # starve every other RPC (measured by benchmarks/login_storm.py).
        default_concurrency = max(1, (os.cpu_count() or 1) - 1)
        concurrency = max_concurrency if max_concurrency is not None else default_concurrency
        if concurrency < 1:
            raise ValueError("max_concurrency must be positive")
        waiting = max_waiting if max_waiting is not None else 2 * concurrency
        if waiting < 0:
            raise ValueError("max_waiting must not be negative")
        self._cost = cost
        self._pepper = pepper
        self._concurrency = concurrency
        self._max_waiting = waiting
        self._retry_after = overload_retry_after_seconds
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bcrypt")
        self._slots = asyncio.Semaphore(concurrency)
        self._pending = 0  # running + waiting
        self._calls = 0
        self._dummy = _dummy_hash(cost)

    @property
    def cost(self) -> int:
        """bcrypt cost of new hashes."""
        return self._cost

    @property
    def calls(self) -> int:
        """bcrypt computations started so far (for metrics and tests)."""
        return self._calls

    async def hash(self, password: str) -> str:
        """Return the bcrypt hash (``$2b$<cost>$…``, 60 ASCII characters) of ``password``.

        Does not apply the policy: call :func:`check_password` first where a
        password is chosen. Raises ``InvalidArgument`` for text that cannot be
        a password (over 1024 characters, lone surrogates) and ``Overloaded``
        when the waiting line is full. Cost: one bcrypt at :attr:`cost` in the
        pool (about 1 s at 14), nothing on the event loop.
        """
        secret = self._prehash(password)
        if secret is None:
            raise InvalidArgument(public_message="invalid password", detail="unhashable password")
        digest = await self._run(bcrypt.hashpw, secret, bcrypt.gensalt(self._cost))
        return digest.decode("ascii")

    async def verify(self, password: str, hashed: str) -> bool:
        """True if ``password`` matches ``hashed``; constant-time comparison.

        Any unusable input (malformed hash, impossible password) returns
        ``False`` after spending the same time as a real verify. Raises
        ``Overloaded`` when the waiting line is full. Cost: one bcrypt at the
        hash's own cost.
        """
        secret = self._prehash(password)
        if secret is None or not _BCRYPT_HASH.fullmatch(hashed):
            if secret is not None:
                _log.warning("stored password hash is malformed; treated as a mismatch")
            await self.verify_dummy()
            return False
        return await self._run(bcrypt.checkpw, secret, hashed.encode("ascii"))

    async def verify_dummy(self, password: str = "") -> bool:
        """Spend exactly what :meth:`verify` spends, for an account that does not exist.

        Always returns ``False``. Raises ``Overloaded`` like :meth:`verify`, so
        an unknown e-mail is refused under load exactly as a known one.
        """
        secret = self._prehash(password[:_MAX_INPUT_CHARS]) or self._prehash("")
        assert secret is not None  # noqa: S101 - the empty password always pre-hashes
        await self._run(bcrypt.checkpw, secret, self._dummy)
        return False

    def needs_rehash(self, hashed: str) -> bool:
        """True if ``hashed`` is malformed or weaker than :attr:`cost` (rehash on next sign-in)."""
        match = _BCRYPT_HASH.fullmatch(hashed)
        return match is None or int(match.group(1)) < self._cost

    def close(self) -> None:
        """Stop the pool; queued work is dropped, running hashes finish in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _prehash(self, password: str) -> bytes | None:
        if len(password) > _MAX_INPUT_CHARS:
            return None
        try:
            data = unicodedata.normalize("NFKC", password).encode("utf-8")
        except UnicodeEncodeError:
            return None
        mac = hmac.new(self._pepper, data, hashlib.sha256).digest()
        return base64.b64encode(mac)

    def ensure_capacity(self) -> None:
        """Raise ``Overloaded`` now if a hash started now would be refused.

        Lets callers refuse a sign-in before paying for its database and
        Valkey lookups when the hashing queue is already full.
        """
        if self._pending >= self._concurrency + self._max_waiting:
            raise Overloaded(
                retry_after_seconds=self._retry_after,
                detail=f"password hashing: {self._pending} calls running or waiting",
            )

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._pending >= self._concurrency + self._max_waiting:
            raise Overloaded(
                retry_after_seconds=self._retry_after,
                detail=f"password hashing: {self._pending} calls running or waiting",
            )
        self._pending += 1
        try:
            await self._slots.acquire()
        except BaseException:
            self._pending -= 1
            raise
        self._calls += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        future.add_done_callback(self._finished)
        # Shielded: a caller that gives up (deadline, disconnect) must not free
        # the slot while its thread still burns a core; _finished frees it.
        return await asyncio.shield(future)

    def _finished(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        self._pending -= 1
        if not future.cancelled():
            future.exception()  # retrieved here so an abandoned call logs nothing
