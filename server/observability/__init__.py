"""Metrics, traces and the scrape endpoint of a graphgate process.

- :mod:`.metrics`: :class:`Metrics`, the Prometheus series (bounded labels).
- :mod:`.endpoint`: ``GET /metrics`` on ``GRAPHGATE_METRICS_LISTEN``.
- :mod:`.tracing`: the OpenTelemetry tracer provider, OTLP export when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, an in-memory exporter for tests.
- :mod:`.engine`: engine calls as child spans and query-time samples.
- :mod:`.runtime`: start and stop all of it from the runner.
- :mod:`.options`: :class:`ObservabilityOptions` and the settings parsers.

The RPC series are recorded by ``graphgate.interceptors.metrics``.
"""

from __future__ import annotations

from graphgate.server.observability.endpoint import MetricsEndpoint, start_metrics_endpoint
from graphgate.server.observability.engine import EngineCall, EngineObserver
from graphgate.server.observability.metrics import Metrics
from graphgate.server.observability.options import ObservabilityOptions
from graphgate.server.observability.runtime import Observability, start_observability
from graphgate.server.observability.tracing import Tracing, configure_tracing, memory_spans

__all__ = [
    "EngineCall",
    "EngineObserver",
    "Metrics",
    "MetricsEndpoint",
    "Observability",
    "ObservabilityOptions",
    "Tracing",
    "configure_tracing",
    "memory_spans",
    "start_metrics_endpoint",
    "start_observability",
]
