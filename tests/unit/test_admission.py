"""Admission control's decisions, driven by hand (no sockets)."""

from __future__ import annotations

import pytest

from graphgate.server.errors import Overloaded
from graphgate.server.services.admission import AdmissionController, Pressure, Thresholds


class Calm:
    def sample(self) -> Pressure:
        return Pressure(memory_bytes=2**20, cpu_percent=1.0)


def test_c18_one_late_wake_up_does_not_shed_two_do() -> None:
    """C18: event-loop lag sheds only when it lasts (two samples), and stops
    below the stop level (hysteresis)."""
    controller = AdmissionController(source=Calm(), thresholds=Thresholds())
    controller.sample_now(loop_lag_ms=20_000)  # one pause: a GC or a blocking call
    assert not controller.shedding
    controller.sample_now(loop_lag_ms=400)
    assert controller.shedding
    with pytest.raises(Overloaded):
        controller.admit(None)
    controller.sample_now(loop_lag_ms=150)  # below start, above stop: still shedding
    controller.sample_now(loop_lag_ms=150)
    assert controller.shedding
    controller.sample_now(loop_lag_ms=20)
    controller.sample_now(loop_lag_ms=20)
    assert not controller.shedding
    controller.admit(None)
    assert controller.inflight == 1


def test_c18_never_shed_calls_pass_while_shedding() -> None:
    controller = AdmissionController(source=Calm())
    controller.sample_now(loop_lag_ms=1000)
    controller.sample_now(loop_lag_ms=1000)
    assert controller.shedding
    controller.admit(None, never_shed=True)
    assert controller.inflight == 1


def test_c18_per_graph_limit() -> None:
    controller = AdmissionController(source=Calm(), thresholds=Thresholds(per_graph_inflight=2))
    controller.admit("g")
    controller.admit("g")
    with pytest.raises(Overloaded):
        controller.admit("g")
    controller.admit("other")
    controller.release("g")
    controller.admit("g")
