"""Runs cases one after another, each with a fresh server and load-generator process.

Cases never overlap: on a small machine two servers would steal each other's
cores. Each case is paired with the baseline of its own round, measured
minutes (not hours) apart. Odd rounds run the baseline first, even rounds
last (A B C, C B A, ...), so a steady drift of the machine, or an advantage of
going first or last, cancels out over an even number of rounds.
"""

from __future__ import annotations

import datetime
import os
import platform
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from benchmarks.case import Case
from benchmarks.cases import BASELINE
from benchmarks.loadgen import LoadSettings, run_load
from benchmarks.report import Conditions, Measurement, Report, build_report
from benchmarks.serverproc import ServerProcess

__all__ = ["RunSettings", "run"]


@dataclass(frozen=True)
class RunSettings:
    """One run: how each case is driven and how many rounds."""

    load: LoadSettings
    rounds: int = 1


def run(
    cases: Sequence[Case[Any]],
    settings: RunSettings,
    *,
    progress: Callable[[str], None] = lambda line: None,
) -> Report:
    """Measures ``cases``, which must include the baseline, and reports.

    Takes about rounds x cases x (warm-up + duration + ~2 s of process start).
    Every process it starts is stopped before it returns or raises, including
    on KeyboardInterrupt. Raises `benchmarks._process.ChildError` when a server
    or load generator fails.
    """
    by_name = {case.name: case for case in cases}
    if BASELINE not in by_name:
        raise ValueError(f"the cases must include the baseline {BASELINE!r}")
    ordered = [by_name[BASELINE], *(c for c in cases if c.name != BASELINE)]
    conditions = _conditions(settings)
    measurements: list[Measurement] = []
    for round_number in range(1, settings.rounds + 1):
        for case in ordered if round_number % 2 else reversed(ordered):
            with ServerProcess(case) as server:
                result = run_load(
                    case, address=server.address, server_pid=server.pid, settings=settings.load
                )
            measurement = Measurement(case=case.name, round=round_number, result=result)
            measurements.append(measurement)
            progress(
                f"round {round_number}/{settings.rounds} {case.name}: "
                f"{measurement.calls_per_s:,.0f} calls/s, "
                f"{_or_dash(measurement.server_cpu_us)} µs server CPU/call"
            )
    return build_report(
        measurements,
        baseline=BASELINE,
        summaries={case.name: case.summary for case in ordered},
        conditions=conditions,
    )


def _conditions(settings: RunSettings) -> Conditions:
    return Conditions(
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        cpu_count=os.cpu_count() or 0,
        load_average_at_start=os.getloadavg(),
        python_calibration_us=_calibrate(),
        platform=platform.platform(),
        python=platform.python_version(),
        grpcio=metadata.version("grpcio"),
        uvloop=metadata.version("uvloop"),
        concurrency=settings.load.concurrency,
        warmup_s=settings.load.warmup_s,
        duration_s=settings.load.duration_s,
        rounds=settings.rounds,
    )


def _calibrate() -> float:
    """Microseconds a fixed pure-Python loop takes here now (best of 5).

    Compared across runs it tells a slower machine from slower code: if this
    figure rose by as much as the per-call CPU did, the machine changed.
    """
    timer = timeit.Timer("sum(range(10_000))")
    return min(timer.repeat(repeat=5, number=100)) / 100 * 1e6


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
