"""Engine calls as child spans and query-time samples.

:class:`EngineObserver` wraps one call to the graph workers: a span
``graphgate.engine/<operation>`` under the call's current span, and one sample
of ``graphgate_engine_query_duration_seconds`` by query class and outcome.
The graph service uses it around ``GraphEngine.execute`` and ``stream``.

The sample is the time the block took, unless the block reports the
engine's own time (:attr:`EngineCall.engine_seconds`): a stream does, from
its summary, so that a slow reader does not count as a slow query.

The span is started without becoming the current span, so it is safe to
hold across the ``yield`` of an async generator (a stream), where changing
the current context would leak into the consumer.

Security: spans carry the query class and operation, never the statement,
its parameters or an engine message (which may quote data).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from graphgate.server.observability.metrics import Metrics

ENGINE_TRACER = "graphgate.engine"


def _outcome(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return "error"


@dataclass(slots=True)
class EngineCall:
    """One observed engine call: its span, and the engine time if the call reports it."""

    span: Span
    #: Set by the caller from the worker's own measure (a stream's summary).
    engine_seconds: float | None = None


class EngineObserver:
    """Times engine calls into ``metrics`` and traces them as child spans."""

    def __init__(
        self,
        metrics: Metrics | None,
        *,
        tracer: Tracer | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``metrics`` None traces only; ``tracer`` defaults to the global provider's."""
        self._metrics = metrics
        self._tracer = tracer or trace.get_tracer(ENGINE_TRACER)
        self._clock = clock

    @contextmanager
    def query(self, query_class: str, *, operation: str) -> Iterator[EngineCall]:
        """Observe one statement of ``query_class`` (``read``, ``write``…) run by ``operation``.

        Re-raises whatever the block raises; the span then has an error
        status naming the exception type only.
        """
        label = query_class.lower()
        span = self._tracer.start_span(
            f"{ENGINE_TRACER}/{operation}",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "ladybug",
                "db.operation.name": operation,
                "graphgate.query_class": label,
            },
        )
        call = EngineCall(span)
        started = self._clock()
        outcome = "ok"
        try:
            yield call
        except BaseException as error:
            outcome = _outcome(error)
            if outcome == "error":
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            elapsed = self._clock() - started
            if call.engine_seconds is not None:
                elapsed = call.engine_seconds
            span.set_attribute("graphgate.outcome", outcome)
            span.end()
            if self._metrics is not None:
                self._metrics.query(label, elapsed, outcome=outcome)
