"""Turns measurements into the report: figures per case and ratios to the baseline.

Absolute figures drift on a shared machine from one minute to the next; the
ratio of a case to the baseline measured in the same round (minutes apart at
most, same machine state) is what stays comparable. With several rounds each
figure is the median across rounds and each ratio the median of per-round
ratios, so one disturbed round does not decide the result.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.loadgen import OK, LoadResult

__all__ = [
    "BUSY_ELSEWHERE_CORES",
    "CLIENT_BOUND_CORES",
    "Conditions",
    "Measurement",
    "Report",
    "Row",
    "build_report",
]

CLIENT_BOUND_CORES = 0.9
"""A load generator using this much of its one core is likely the bottleneck."""

BUSY_ELSEWHERE_CORES = 0.25
"""Other processes using this much CPU during a window (or this much more than
during the baseline's) disturb its figures (its ratios)."""


@dataclass(frozen=True)
class Measurement:
    """One case measured once (one round)."""

    case: str
    round: int
    result: LoadResult

    @property
    def calls_per_s(self) -> float:
        """OK calls per second of the measured window."""
        return self.result.ok / self.result.elapsed_s

    @property
    def server_cpu_us(self) -> float | None:
        """Server CPU per OK call, in microseconds (None without OK calls)."""
        return _per_call_us(self.result.server_cpu_s, self.result.ok)

    @property
    def client_cpu_us(self) -> float | None:
        """Load-generator CPU per OK call, in microseconds."""
        return _per_call_us(self.result.client_cpu_s, self.result.ok)

    @property
    def other_cores(self) -> float:
        """CPU used by every other process on the machine, in cores, during the window."""
        result = self.result
        others = result.machine_cpu_s - result.server_cpu_s - result.client_cpu_s
        return max(0.0, others) / result.elapsed_s

    def as_json(self) -> dict[str, Any]:
        """The raw figures of this round, for the JSON report."""
        result = self.result
        return {
            "case": self.case,
            "round": self.round,
            "statuses": result.statuses,
            "elapsed_s": result.elapsed_s,
            "calls_per_s": self.calls_per_s,
            "p50_ms": _ms(result.p50_s),
            "p90_ms": _ms(result.p90_s),
            "p99_ms": _ms(result.p99_s),
            "server_cpu_s": result.server_cpu_s,
            "client_cpu_s": result.client_cpu_s,
            "machine_cpu_s": result.machine_cpu_s,
            "other_cores": self.other_cores,
            "server_cpu_us_per_call": self.server_cpu_us,
            "client_cpu_us_per_call": self.client_cpu_us,
        }


@dataclass(frozen=True)
class Row:
    """One case in the report (medians across rounds)."""

    case: str
    summary: str
    rounds: int
    calls_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_us_per_call: float | None
    client_cpu_us_per_call: float | None
    server_cores: float
    """Server CPU seconds per wall second: 1.0 is one core fully busy."""
    client_cores: float
    other_cores: float
    """CPU other processes used meanwhile; the machine is shared, so check it."""
    statuses: dict[str, int]
    """Calls by status, summed over rounds."""
    throughput_ratio: float | None
    """calls/s of this case / calls/s of the baseline in the same round."""
    cpu_ratio: float | None
    """Server CPU per call of this case / that of the baseline in the same round."""
    cpu_delta_us: float | None
    """Server CPU per call above the baseline's, in microseconds: the added cost."""

    @property
    def errors(self) -> int:
        """Calls that did not end OK."""
        return sum(count for status, count in self.statuses.items() if status != OK)


@dataclass(frozen=True)
class Conditions:
    """What a reader needs to judge a run: the machine, its load, versions, settings."""

    started_at: str
    cpu_count: int
    load_average_at_start: tuple[float, float, float]
    python_calibration_us: float
    """Microseconds of a fixed pure-Python loop: the machine's speed at the time."""
    platform: str
    python: str
    grpcio: str
    uvloop: str
    concurrency: int
    warmup_s: float
    duration_s: float
    rounds: int

    def line(self) -> str:
        """One line for the top of the table."""
        return (
            f"{self.cpu_count} CPUs, load average {self.load_average_at_start[0]:.2f}, "
            f"calibration loop {self.python_calibration_us:.0f} µs; Python {self.python}, "
            f"grpcio {self.grpcio}, uvloop {self.uvloop}; {self.concurrency} calls in flight, "
            f"{self.duration_s:g} s measured after {self.warmup_s:g} s warm-up, "
            f"{self.rounds} round(s)"
        )


@dataclass(frozen=True)
class Report:
    """Everything one run produced."""

    conditions: Conditions
    baseline: str
    rows: list[Row]
    measurements: list[Measurement]

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (None where a figure is undefined)."""
        return {
            "conditions": asdict(self.conditions),
            "baseline": self.baseline,
            "cases": [asdict(row) | {"errors": row.errors} for row in self.rows],
            "measurements": [m.as_json() for m in self.measurements],
        }

    def write_json(self, path: Path) -> None:
        """Writes `as_json` to ``path`` (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")

    def text(self) -> str:
        """The run conditions, the rows as an aligned table, and notes on figures to distrust."""
        parts = [self.conditions.line(), self._table()]
        notes = list(self._notes())
        if notes:
            parts.append("\n".join(notes))
        return "\n\n".join(parts)

    def _table(self) -> str:
        headers = (
            "case", "calls/s", "p50 ms", "p99 ms", "srv µs/call", "cli µs/call",
            "srv cores", "cli cores", "other cores", "errors", "x calls/s", "x srv µs",
            "+srv µs",
        )  # fmt: skip
        lines = [headers] + [
            (
                row.case,
                f"{row.calls_per_s:,.0f}",
                _fmt(row.p50_ms, "{:.2f}"),
                _fmt(row.p99_ms, "{:.2f}"),
                _fmt(row.server_cpu_us_per_call, "{:.1f}"),
                _fmt(row.client_cpu_us_per_call, "{:.1f}"),
                f"{row.server_cores:.2f}",
                f"{row.client_cores:.2f}",
                f"{row.other_cores:.2f}",
                f"{row.errors:,}",
                _fmt(row.throughput_ratio, "{:.3f}"),
                _fmt(row.cpu_ratio, "{:.3f}"),
                _fmt(row.cpu_delta_us, "{:+.1f}"),
            )
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
        text = [
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
            for line in lines
        ]
        text.insert(1, "  ".join("-" * width for width in widths))
        text.append(f"ratios (x, +) are against {self.baseline!r} measured in the same round")
        return "\n".join(text)

    def _notes(self) -> Iterable[str]:
        base = next(row for row in self.rows if row.case == self.baseline)
        for row in self.rows:
            if row.errors:
                failed = {s: n for s, n in row.statuses.items() if s != OK}
                yield f"note: {row.case}: {row.errors:,} calls failed {failed}; figures per OK call"
            if row.other_cores >= BUSY_ELSEWHERE_CORES:
                yield (
                    f"note: {row.case}: other processes used {row.other_cores:.2f} cores "
                    "meanwhile, so its absolute figures are low"
                )
            if abs(row.other_cores - base.other_cores) >= BUSY_ELSEWHERE_CORES:
                yield (
                    f"note: {row.case}: the machine was not equally busy for it and the "
                    f"baseline ({row.other_cores:.2f} vs {base.other_cores:.2f} cores elsewhere): "
                    "its ratios are unreliable; rerun with --rounds 4 or more"
                )
            if row.client_cores >= CLIENT_BOUND_CORES:
                yield (
                    f"note: {row.case}: the load generator used {row.client_cores:.2f} of its "
                    "one core, so it may cap calls/s; CPU per call is still valid."
                )


def build_report(
    measurements: Sequence[Measurement],
    *,
    baseline: str,
    summaries: Mapping[str, str],
    conditions: Conditions,
) -> Report:
    """Aggregates measurements (all rounds, baseline included) into a `Report`.

    Rows follow ``summaries``' order; every round must contain the baseline.
    """
    by_round: dict[int, dict[str, Measurement]] = {}
    for m in measurements:
        by_round.setdefault(m.round, {})[m.case] = m
    rows = []
    for case, summary in summaries.items():
        rounds = [(r[case], r[baseline]) for r in by_round.values() if case in r]
        if not rounds:
            continue
        own = [m for m, _ in rounds]
        statuses: Counter[str] = Counter()
        for m in own:
            statuses.update(m.result.statuses)
        rows.append(
            Row(
                case=case,
                summary=summary,
                rounds=len(own),
                calls_per_s=statistics.median(m.calls_per_s for m in own),
                p50_ms=_median(_ms(m.result.p50_s) for m in own),
                p99_ms=_median(_ms(m.result.p99_s) for m in own),
                server_cpu_us_per_call=_median(m.server_cpu_us for m in own),
                client_cpu_us_per_call=_median(m.client_cpu_us for m in own),
                server_cores=statistics.median(
                    m.result.server_cpu_s / m.result.elapsed_s for m in own
                ),
                client_cores=statistics.median(
                    m.result.client_cpu_s / m.result.elapsed_s for m in own
                ),
                other_cores=statistics.median(m.other_cores for m in own),
                statuses=dict(statuses),
                throughput_ratio=_median(_ratio(m.calls_per_s, b.calls_per_s) for m, b in rounds),
                cpu_ratio=_median(_ratio(m.server_cpu_us, b.server_cpu_us) for m, b in rounds),
                cpu_delta_us=_median(
                    _difference(m.server_cpu_us, b.server_cpu_us) for m, b in rounds
                ),
            )
        )
    return Report(
        conditions=conditions, baseline=baseline, rows=rows, measurements=list(measurements)
    )


def _per_call_us(cpu_s: float, calls: int) -> float | None:
    return cpu_s / calls * 1e6 if calls else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def _difference(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else value - base


def _median(values: Iterable[float | None]) -> float | None:
    """Median of the defined values; None if a round lacks the figure."""
    collected = list(values)
    if not collected or any(v is None for v in collected):
        return None
    return statistics.median(v for v in collected if v is not None)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)
