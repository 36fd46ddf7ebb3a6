"""The load generator, in a process of its own.

It keeps ``concurrency`` calls in flight on one event loop (uvloop) for a
warm-up and then a measured window. Only calls that complete inside the window
count, and the server's CPU time is sampled by this process at the same two
instants, so calls and CPU seconds cover exactly the same interval.

Its own CPU time is measured too: on a small machine the client competes with
the server for cores, and a client near one full core caps the throughput it
can observe (the report flags it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import traceback
from array import array
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import grpc.aio  # type: ignore[import-untyped, unused-ignore]  # no stubs in the dev deps
import psutil
import uvloop

from benchmarks._process import (
    SPAWN,
    ChildError,
    ChildFailed,
    cpu_seconds_between,
    ignore_sigint,
    receive,
    stop_process,
    tree_cpu_seconds,
)
from benchmarks.case import Call, CallFailed, Case, import_path, load_function

__all__ = ["LoadResult", "LoadSettings", "run_load"]

OK = "OK"
_SETUP_TIMEOUT_S = 60.0
_DRAIN_TIMEOUT_S = 5.0
"""After the window, in-flight calls get this long before they are cancelled."""
_SPAWN_SLACK_S = 30.0
"""Interpreter start and imports in the child, before anything is timed."""


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long to drive a case."""

    concurrency: int
    warmup_s: float
    duration_s: float


@dataclass(frozen=True)
class LoadResult:
    """What one measured window saw. Latencies are of OK calls only, in seconds."""

    statuses: dict[str, int]
    """Calls completed in the window, by status code name (``OK`` included)."""
    elapsed_s: float
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    server_cpu_s: float
    """User + system CPU of the server process and its descendants in the window."""
    client_cpu_s: float
    """User + system CPU of this load generator in the window."""
    machine_cpu_s: float
    """Busy CPU of the whole machine in the window (all cores, every process)."""

    @property
    def ok(self) -> int:
        """Calls that completed with OK inside the window."""
        return self.statuses.get(OK, 0)


@dataclass(frozen=True)
class _Job:
    """Everything the child needs, as plain picklable values."""

    address: str
    server_pid: int
    connect: str
    setup: str | None
    call: str
    settings: LoadSettings


def run_load(
    case: Case[Any], *, address: str, server_pid: int, settings: LoadSettings
) -> LoadResult:
    """Drives the server at ``address`` with the case's call from a spawned process.

    Blocks for about warm-up + duration (plus process start and setup).
    Raises `ChildError` if the generator fails or overruns its time budget;
    the generator process is always gone when this returns or raises.
    """
    job = _Job(
        address=address,
        server_pid=server_pid,
        connect=import_path(case.connect),
        setup=import_path(case.setup) if case.setup is not None else None,
        call=import_path(case.call),
        settings=settings,
    )
    conn, child_end = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(
        target=_generate_in_child, args=(job, child_end), name=f"bench-load-{case.name}"
    )
    process.start()
    child_end.close()
    budget = (
        _SPAWN_SLACK_S
        + _SETUP_TIMEOUT_S
        + settings.warmup_s
        + settings.duration_s
        + _DRAIN_TIMEOUT_S
    )
    try:
        result = receive(conn, process, timeout=budget, role="load generator")
        if not isinstance(result, LoadResult):
            raise ChildError(f"load generator sent {result!r}")
        return result
    finally:
        stop_process(process, grace=_DRAIN_TIMEOUT_S)
        conn.close()


def _generate_in_child(job: _Job, conn: Connection) -> None:
    """Process entry point: run the job, send back a `LoadResult` or `ChildFailed`."""
    ignore_sigint()
    outcome: LoadResult | ChildFailed
    try:
        outcome = uvloop.run(_generate(job))
    except Exception:
        outcome = ChildFailed("load generator", traceback.format_exc())
    with contextlib.suppress(OSError):  # the harness died: nobody is left to tell
        conn.send(outcome)
    conn.close()


class _Tally:
    """Shared by all workers of one run; a single event loop, so no locks."""

    def __init__(self) -> None:
        self.running = True
        self.recording = False
        self.statuses: Counter[str] = Counter()
        self.ok_latencies = array("d")


async def _generate(job: _Job) -> LoadResult:
    connect = load_function(job.connect)
    build = load_function(job.call)
    setup = load_function(job.setup) if job.setup is not None else None
    settings = job.settings
    server = psutil.Process(job.server_pid)
    me = psutil.Process()

    async with connect(job.address) as connection:
        prepared = await asyncio.wait_for(setup(connection), _SETUP_TIMEOUT_S) if setup else {}
        call: Call = build(connection, prepared)
        tally = _Tally()
        workers = [asyncio.create_task(_worker(call, tally)) for _ in range(settings.concurrency)]
        try:
            await asyncio.sleep(settings.warmup_s)
            server_start, client_start = tree_cpu_seconds(server), _cpu_seconds(me)
            machine_start = _machine_busy_seconds()
            started = time.perf_counter()
            tally.recording = True
            await asyncio.sleep(settings.duration_s)
            tally.recording = False
            elapsed = time.perf_counter() - started
            server_end, client_end = tree_cpu_seconds(server), _cpu_seconds(me)
            machine_end = _machine_busy_seconds()
        finally:
            tally.running = False
            _, stragglers = await asyncio.wait(workers, timeout=_DRAIN_TIMEOUT_S)
            for task in stragglers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    latencies = sorted(tally.ok_latencies)
    return LoadResult(
        statuses=dict(tally.statuses),
        elapsed_s=elapsed,
        p50_s=_percentile(latencies, 0.50),
        p90_s=_percentile(latencies, 0.90),
        p99_s=_percentile(latencies, 0.99),
        server_cpu_s=cpu_seconds_between(server_start, server_end),
        client_cpu_s=client_end - client_start,
        machine_cpu_s=machine_end - machine_start,
    )


async def _worker(call: Call, tally: _Tally) -> None:
    """Makes one call after another until the run ends; one of ``concurrency``."""
    while tally.running:
        started = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            status = error.code().name
        except CallFailed as error:
            status = error.status
        except Exception as error:
            status = type(error).__name__
        else:
            status = OK
        if tally.recording:
            tally.statuses[status] += 1
            if status == OK:
                tally.ok_latencies.append(time.perf_counter() - started)
        if status != OK:
            # A call that fails without suspending would otherwise starve the
            # event loop, and with it the timer that ends the run.
            await asyncio.sleep(0)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling since boot."""
    times = psutil.cpu_times()
    # On Linux guest time is already inside user; iowait and steal are not work.
    return times.user + times.nice + times.system + times.irq + times.softirq


def _percentile(ordered: list[float], quantile: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]
