"""Retries where they are safe: exponential backoff with full jitter, on a budget.

A call is retried only when all of these hold:

- its RPC does not write (the ``writes`` flag of its ``graphgate.v1.policy``
  option, read by :mod:`graphgate.clients.contract`): a write that timed out
  or was shed may have happened, and doing it twice is not ours to decide;
- it failed with UNAVAILABLE (server down, overloaded, a store away) or
  RESOURCE_EXHAUSTED (a rate limit);
- the budget is not spent: at most ``max_attempts`` attempts and at most
  ``max_total_wait`` seconds of sleeping in all. A server that asks for a
  longer wait (``RetryInfo`` or ``retry-after``) than the budget has left gets
  the error raised at once, so the caller can decide.

The wait before retry *n* (0-based) is ``uniform(0, min(max_backoff,
initial_backoff * multiplier ** n))`` ("full jitter": clients that failed
together do not come back together), added to the server's requested delay
when it sent one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc

from graphgate.clients.errors import GraphgateError

_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries calls that do not write.

    ``RetryPolicy(max_attempts=1)`` (or :meth:`disabled`) turns retries off.
    """

    #: Attempts in all, the first included.
    max_attempts: int = 4
    #: The jitter ceiling of the first retry, in seconds.
    initial_backoff: float = 0.2
    #: The jitter ceiling never grows beyond this, in seconds.
    max_backoff: float = 5.0
    #: Growth of the jitter ceiling per retry.
    multiplier: float = 2.0
    #: Seconds of waiting one call may spend in all, server-requested delays included.
    max_total_wait: float = 30.0
    #: Status codes worth another attempt.
    retry_codes: frozenset[grpc.StatusCode] = field(default=_RETRYABLE)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.initial_backoff, self.max_backoff, self.max_total_wait) < 0:
            raise ValueError("backoffs and max_total_wait must not be negative")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)

    def budget(self, rng: random.Random | None = None) -> RetryBudget:
        """A fresh budget for one call."""
        return RetryBudget(self, rng or random.Random())  # noqa: S311 - jitter, not secrets


class RetryBudget:
    """What is left of one call's retries; :meth:`next_delay` spends it."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng
        self.attempts = 1
        self.waited = 0.0

    def next_delay(self, error: GraphgateError, *, writes: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to raise ``error`` now."""
        policy = self._policy
        if writes or error.code not in policy.retry_codes:
            return None
        if self.attempts >= policy.max_attempts:
            return None
        ceiling = min(
            policy.max_backoff, policy.initial_backoff * policy.multiplier ** (self.attempts - 1)
        )
        delay = self._rng.uniform(0, ceiling) + max(0.0, error.retry_after or 0.0)
        if self.waited + delay > policy.max_total_wait:
            return None
        self.attempts += 1
        self.waited += delay
        return delay
