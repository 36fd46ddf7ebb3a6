"""Admission control: shed load before any work is paid for (C18).

Pressure is sampled in the background, never per request: the process's
resident memory and CPU use (psutil), plus the calls in flight, which the
controller counts itself, per process and per graph. Shedding starts when any
signal reaches its *start* threshold and stops only when every signal is
below its *stop* threshold (hysteresis), so the server does not flap at the
edge. Thresholds can be changed while the server runs (OperatorService
``SetAdmissionThresholds``). Health checks and RPCs whose policy says
``never_shed`` (token refresh) are always admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import psutil

from graphgate.server.errors import Overloaded

_log = logging.getLogger("graphgate.admission")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Start and stop levels of each pressure signal."""

    memory_start_bytes: int = 6 * 2**30
    memory_stop_bytes: int = 5 * 2**30
    #: Percent of one core, as psutil counts it: a busy asyncio server sits near
    #: 100 % of its core without being overloaded, so the defaults only trip on
    #: runaway threads; the in-flight count is the better queueing signal.
    cpu_start_percent: float = 400.0
    cpu_stop_percent: float = 300.0
    inflight_start: int = 256
    inflight_stop: int = 192
    per_graph_inflight: int = 64
    #: Event-loop lag: how late the sampler wakes up. It is the queueing signal
    #: that in-flight counts miss, since calls wait in gRPC before any
    #: interceptor sees them.
    loop_lag_start_ms: float = 250.0
    loop_lag_stop_ms: float = 100.0
    retry_after_seconds: float = 1.0

    def __post_init__(self) -> None:
        pairs = [
            (self.memory_stop_bytes, self.memory_start_bytes),
            (self.cpu_stop_percent, self.cpu_start_percent),
            (self.inflight_stop, self.inflight_start),
            (self.loop_lag_stop_ms, self.loop_lag_start_ms),
        ]
        if any(stop > start or stop < 0 for stop, start in pairs):
            raise ValueError("each stop threshold must be between 0 and its start threshold")
        if self.per_graph_inflight < 1 or self.retry_after_seconds <= 0:
            raise ValueError("per_graph_inflight and retry_after_seconds must be positive")


@dataclass(frozen=True, slots=True)
class Pressure:
    """One sample of the process's memory and CPU use."""

    memory_bytes: int
    cpu_percent: float


class PressureSource(Protocol):
    """Where samples come from (psutil in production, a dial in tests)."""

    def sample(self) -> Pressure:
        """Read the current pressure; must be cheap and never block long."""
        ...


class ProcessPressure:
    """This process's RSS and CPU share since the previous sample.

    CPU is CPU time over wall time between samples at least
    ``min_interval`` apart: shorter intervals give meaningless spikes (a
    bcrypt burst over 2 ms reads as several hundred percent).
    """

    def __init__(self, *, min_interval: float = 0.25) -> None:
        self._process = psutil.Process()
        self._min_interval = min_interval
        self._last_wall = time.monotonic()
        self._last_cpu = self._cpu_seconds()
        self._cpu_percent = 0.0

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def sample(self) -> Pressure:
        """RSS in bytes and CPU percent of one core since the last full interval."""
        now = time.monotonic()
        if now - self._last_wall >= self._min_interval:
            cpu = self._cpu_seconds()
            self._cpu_percent = 100.0 * (cpu - self._last_cpu) / (now - self._last_wall)
            self._last_wall, self._last_cpu = now, cpu
        return Pressure(self._process.memory_info().rss, self._cpu_percent)


class AdmissionController:
    """Decides, in O(1) per call, whether a call may start."""

    def __init__(
        self,
        *,
        thresholds: Thresholds | None = None,
        source: PressureSource | None = None,
        interval_seconds: float = 0.5,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._thresholds = thresholds or Thresholds()
        self._source = source or ProcessPressure()
        self._interval = interval_seconds
        self._on_change = on_change
        self._clock = clock
        self._pressure = Pressure(0, 0.0)
        self._lag_ms = 0.0
        self._last_lag_ms = 0.0
        self._users = 0
        self._shedding = False
        self._inflight = 0
        self._per_graph: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self.shed_total = 0

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds in force."""
        return self._thresholds

    @property
    def shedding(self) -> bool:
        """True while new calls are refused."""
        return self._shedding

    @property
    def inflight(self) -> int:
        """Calls admitted and not yet finished."""
        return self._inflight

    @property
    def pressure(self) -> Pressure:
        """The latest sample."""
        return self._pressure

    @property
    def loop_lag_ms(self) -> float:
        """How late the last background sample woke up, in milliseconds."""
        return self._lag_ms

    def update(self, **changes: float) -> Thresholds:
        """Change thresholds at run time; raises ValueError for inconsistent ones."""
        self._thresholds = dataclasses.replace(self._thresholds, **changes)  # type: ignore[arg-type]
        self._evaluate()
        return self._thresholds

    def sample_now(self, *, loop_lag_ms: float | None = None) -> None:
        """Take one sample and re-evaluate (the background loop calls this)."""
        self._pressure = self._source.sample()
        if loop_lag_ms is not None:
            # Two late wake-ups in a row, not one: a single pause (a GC, a
            # blocking call) is not a queue, and must not shed on its own.
            self._lag_ms = min(loop_lag_ms, self._last_lag_ms)
            self._last_lag_ms = loop_lag_ms
        self._evaluate()

    def _evaluate(self) -> None:
        t, p = self._thresholds, self._pressure
        if self._shedding:
            calm = (
                p.memory_bytes < t.memory_stop_bytes
                and p.cpu_percent < t.cpu_stop_percent
                and self._inflight < t.inflight_stop
                and self._lag_ms < t.loop_lag_stop_ms
            )
            if calm:
                self._set(False)
        elif (
            p.memory_bytes >= t.memory_start_bytes
            or p.cpu_percent >= t.cpu_start_percent
            or self._inflight >= t.inflight_start
            or self._lag_ms >= t.loop_lag_start_ms
        ):
            self._set(True)

    def _set(self, shedding: bool) -> None:
        self._shedding = shedding
        p = self._pressure
        _log.warning(
            "admission: %s (memory %d MiB, cpu %.0f%%, in flight %d, loop lag %.0f ms)",
            "shedding load" if shedding else "admitting again",
            p.memory_bytes // 2**20,
            p.cpu_percent,
            self._inflight,
            self._lag_ms,
        )
        if self._on_change is not None:
            self._on_change(shedding)

    def admit(self, graph_id: str | None, *, never_shed: bool = False) -> None:
        """Count a call in, or raise :class:`Overloaded` (UNAVAILABLE, retry hint)."""
        t = self._thresholds
        if not never_shed:
            if self._inflight >= t.inflight_start and not self._shedding:
                self._set(True)
            if self._shedding or (graph_id and self._per_graph[graph_id] >= t.per_graph_inflight):
                self.shed_total += 1
                raise Overloaded(retry_after_seconds=t.retry_after_seconds)
        self._inflight += 1
        if graph_id:
            self._per_graph[graph_id] += 1

    def release(self, graph_id: str | None) -> None:
        """Count a call out."""
        self._inflight -= 1
        if graph_id:
            self._per_graph[graph_id] -= 1
            if self._per_graph[graph_id] <= 0:
                del self._per_graph[graph_id]
        if self._shedding and self._inflight < self._thresholds.inflight_stop:
            self._evaluate()

    async def start(self) -> None:
        """Start the background sampler (counted: each start needs a stop)."""
        self._users += 1
        if self._task is None:
            self.sample_now()
            self._task = asyncio.create_task(self._run(), name="admission-sampler")

    async def stop(self) -> None:
        """Stop the background sampler once every starter has stopped."""
        self._users = max(0, self._users - 1)
        if self._task is not None and self._users == 0:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            try:
                self.sample_now(loop_lag_ms=max(0.0, (loop.time() - due) * 1000))
            except psutil.Error:  # pragma: no cover - psutil failing is not fatal
                _log.exception("admission: sampling failed")
