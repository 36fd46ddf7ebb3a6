"""graphgate's benchmark harness: load and overhead measurements against a baseline.

Each case runs its server in one spawned process and its load generator in
another; the report gives calls/s, latency and server CPU per call, and always
the ratio to the ``echo`` baseline measured in the same run. Not part of the
test suite; see ``benchmarks/README.md``. Run ``python -m benchmarks --help``.
"""

from __future__ import annotations

from benchmarks.case import (
    Call,
    CallBuilder,
    CallFailed,
    Case,
    Connect,
    RunningServer,
    ServerFactory,
    Setup,
    SetupResult,
)

__all__ = [
    "Call",
    "CallBuilder",
    "CallFailed",
    "Case",
    "Connect",
    "RunningServer",
    "ServerFactory",
    "Setup",
    "SetupResult",
]
