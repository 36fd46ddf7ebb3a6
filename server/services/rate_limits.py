"""Rate-limit policy, the per-process fallback, and the Valkey circuit breaker (C17).

Algorithm: a sliding-window counter (two fixed windows, the previous one
weighted by its overlap with the sliding window). Exactly N calls pass in any
burst and call N+1 is refused; the window slides, so there is no reset burst
of 2N at a window edge as with fixed windows; and it costs two small integer
keys per identity and category, where a sliding log costs one entry per call
(docs/decisions/004-rate-limit-algorithm.md has the comparison and figures).

Identity (C17): a verified API key, else the user, else the client address;
an unverified key never gets a bucket of its own (the call is refused before
it is counted, or counted by address).

When Valkey fails, a circuit breaker opens and every process enforces its own
share of the cluster-wide limit (limit / replicas) in memory until Valkey
answers again; each transition is logged and audited once.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from graphgate.server.stores.gate import GateResult, RateSpec
from graphgate.v1 import policy_pb2

_log = logging.getLogger("graphgate.rate_limits")

TIERS = ("free", "pro", "enterprise")


@dataclass(frozen=True, slots=True)
class Window:
    """A base limit: ``limit`` calls per ``seconds``."""

    limit: int
    seconds: int


def _category_name(value: policy_pb2.RateLimitCategory.ValueType) -> str:
    name = policy_pb2.RateLimitCategory.Name(value)
    return name.removeprefix("RATE_LIMIT_CATEGORY_").lower()


#: Base limits of the free tier, by category name (each overridable in settings).
DEFAULT_WINDOWS: Mapping[str, Window] = {
    "login": Window(5, 300),
    "register": Window(3, 3600),
    "refresh": Window(20, 60),
    "auth_other": Window(60, 60),
    "keys": Window(30, 60),
    "graph_read": Window(300, 60),
    "graph_write": Window(60, 60),
    "query": Window(300, 60),
    "stream": Window(60, 60),
    "schema": Window(30, 60),
    "members": Window(60, 60),
    "subgraphs": Window(30, 60),
    "backups": Window(10, 3600),
    "upload_create": Window(30, 60),
    "upload_complete": Window(60, 60),
    "ingest": Window(10, 60),
    "analytics": Window(120, 60),
    "operator": Window(60, 60),
    "unspecified": Window(60, 60),
}

#: Categories whose limit protects an anonymous entry point: always by address.
BY_ADDRESS = frozenset({"login", "register"})


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """Base windows per category and the tier multipliers."""

    windows: Mapping[str, Window] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    multipliers: Mapping[str, float] = field(
        default_factory=lambda: {"free": 1.0, "pro": 2.5, "enterprise": 5.0}
    )

    def category(self, value: policy_pb2.RateLimitCategory.ValueType) -> str:
        """The category name of a ``graphgate.v1.RateLimitCategory`` value."""
        return _category_name(value)

    def spec(self, category: str) -> RateSpec:
        """The gate's question for ``category``: its window and the per-tier limits."""
        window = self.windows.get(category) or self.windows["unspecified"]
        limits = tuple(math.floor(window.limit * self.multipliers.get(t, 1.0)) for t in TIERS)
        return RateSpec(
            category=category,
            limits=(limits[0], limits[1], limits[2]),
            window_ms=window.seconds * 1000,
        )

    def spec_for_tier(self, category: str, tier: str) -> RateSpec:
        """Like :meth:`spec`, with the limit of ``tier`` for every tier slot."""
        base = self.spec(category)
        limit = base.limits[TIERS.index(tier)] if tier in TIERS else base.limits[0]
        return RateSpec(category=category, limits=(limit, limit, limit), window_ms=base.window_ms)


def parse_windows(text: str) -> dict[str, Window]:
    """Parse ``"login=5/300,query=600/60"`` (limit per seconds) into windows."""
    windows = dict(DEFAULT_WINDOWS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        limit, _, seconds = value.partition("/")
        if name not in DEFAULT_WINDOWS or not limit.isdigit() or not seconds.isdigit():
            raise ValueError(f"expected CATEGORY=LIMIT/SECONDS, got {item!r}")
        if int(seconds) <= 0:
            raise ValueError(f"window of {name} must be positive")
        windows[name] = Window(int(limit), int(seconds))
    return windows


class BreakerState(enum.Enum):
    """Whether Valkey is trusted right now."""

    CLOSED = "closed"
    OPEN = "open"


class CircuitBreaker:
    """Stops calling Valkey for ``cool_down`` seconds after ``threshold`` failures.

    After the cool-down one trial call is let through; its success closes the
    breaker. ``on_change`` hears each transition once (for the audit log).
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        cool_down: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._threshold = threshold
        self._cool_down = cool_down
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """OPEN while Valkey is being avoided."""
        return BreakerState.OPEN if self._opened_at is not None else BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether to try Valkey now (always when closed; a trial after the cool-down)."""
        if self._opened_at is None:
            return True
        if self._clock() - self._opened_at >= self._cool_down:
            self._opened_at = self._clock()  # one trial per cool-down
            return True
        return False

    def success(self) -> None:
        """Record a good answer from Valkey."""
        self._failures = 0
        if self._opened_at is not None:
            self._opened_at = None
            _log.warning("Valkey answers again: circuit breaker closed")
            if self._on_change:
                self._on_change(BreakerState.CLOSED)

    def failure(self) -> None:
        """Record a failed call to Valkey."""
        self._failures += 1
        if self._opened_at is None and self._failures >= self._threshold:
            self._opened_at = self._clock()
            _log.warning("Valkey failing: circuit breaker open, using per-process limits")
            if self._on_change:
                self._on_change(BreakerState.OPEN)


class LocalRateLimiter:
    """The same sliding-window counter in this process's memory.

    Used while the breaker is open, with each limit divided by the number of
    replicas so the cluster as a whole stays near its limit. Bounded: the
    least recently used identities are forgotten beyond ``max_entries``.
    """

    def __init__(
        self,
        *,
        replicas: int = 1,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._replicas = max(1, replicas)
        self._max = max_entries
        self._clock = clock
        self._counts: OrderedDict[tuple[str, str, int], int] = OrderedDict()

    def check(self, tag: str, rate: RateSpec, tier: str = "free") -> GateResult:
        """Count one call of ``tag``; same answer shape as the Valkey gate."""
        now_ms = int(self._clock() * 1000)
        index = TIERS.index(tier) if tier in TIERS else 0
        limit = max(1, rate.limits[index] // self._replicas) if rate.limits[index] else 0
        if limit <= 0:
            return GateResult("ok", "", True, 0, 0)
        window = rate.window_ms
        number = now_ms // window
        elapsed = now_ms - number * window
        current_key = (tag, rate.category, number)
        previous = self._counts.get((tag, rate.category, number - 1), 0)
        current = self._counts.get(current_key, 0)
        weighted = previous * (window - elapsed) / window + current
        if weighted + 1 > limit:
            return GateResult("ok", "", False, 0, window - elapsed)
        self._counts[current_key] = current + 1
        self._counts.move_to_end(current_key)
        while len(self._counts) > self._max:
            self._counts.popitem(last=False)
        remaining = max(0, math.floor(limit - (weighted + 1)))
        return GateResult("ok", "", True, remaining, window - elapsed)
