"""Command line: ``python -m benchmarks list`` and ``python -m benchmarks run``.

Progress goes to stderr, the table to stdout, the JSON report to ``--json``.
Exit status: 0 done, 1 a server or load generator failed, 2 bad arguments,
130 interrupted (every process started is stopped first in all cases).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

from benchmarks._process import ChildError
from benchmarks.cases import BASELINE, discover
from benchmarks.loadgen import LoadSettings
from benchmarks.runner import RunSettings, run

_Number = TypeVar("_Number", int, float)


def main(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` and runs the command; returns the exit status."""
    args = _parser().parse_args(argv)
    cases = discover()
    if args.command == "list":
        width = max(len(name) for name in cases)
        for name, case in cases.items():
            print(f"{name.ljust(width)}  {case.summary}")
        return 0

    wanted = [n.strip() for n in args.cases.split(",") if n.strip()] if args.cases else list(cases)
    unknown = sorted(set(wanted) - set(cases))
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(cases)}", file=sys.stderr)
        return 2
    selected = [cases[name] for name in dict.fromkeys([BASELINE, *wanted])]
    settings = RunSettings(
        load=LoadSettings(
            concurrency=args.concurrency, warmup_s=args.warmup, duration_s=args.duration
        ),
        rounds=args.rounds,
    )
    # SIGTERM becomes SystemExit so the `with` blocks that stop children still run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        report = run(selected, settings, progress=lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:
        print("interrupted; all benchmark processes stopped", file=sys.stderr)
        return 130
    except ChildError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    print()
    print(report.text())
    if args.json is not None:
        report.write_json(args.json)
        print(f"\nJSON report: {args.json}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Load and overhead benchmarks, reported as ratios to a same-run baseline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the registered cases")
    run_parser = commands.add_parser("run", help="measure cases against the baseline")
    run_parser.add_argument(
        "--cases",
        help=f"comma-separated case names (default: all); {BASELINE!r} always runs too",
    )
    run_parser.add_argument(
        "--duration", type=_bounded(float, 0.5, 600), default=10.0,
        help="measured seconds per case (default 10)",
    )  # fmt: skip
    run_parser.add_argument(
        "--warmup", type=_bounded(float, 0, 60), default=2.0,
        help="unmeasured seconds of load before each window (default 2)",
    )  # fmt: skip
    run_parser.add_argument(
        "--concurrency", type=_bounded(int, 1, 1024), default=64,
        help="calls kept in flight (default 64)",
    )  # fmt: skip
    run_parser.add_argument(
        "--rounds", type=_bounded(int, 1, 20), default=1,
        help="repeat all cases this many times and report medians (default 1)",
    )  # fmt: skip
    run_parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    return parser


def _bounded(
    kind: Callable[[str], _Number], low: _Number, high: _Number
) -> Callable[[str], _Number]:
    """An argparse type: ``kind`` parsed and kept within [low, high]."""

    def parse(text: str) -> _Number:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
