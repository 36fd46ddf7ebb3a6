"""Start and stop everything observability needs in one process.

The runner calls :func:`start_observability` before building the services
(the metrics object is injected into them) and :meth:`Observability.stop`
after the gRPC server has drained, so the last calls are still counted and
their spans still exported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from graphgate.server.observability.endpoint import MetricsEndpoint, start_metrics_endpoint
from graphgate.server.observability.metrics import Metrics
from graphgate.server.observability.options import ObservabilityOptions
from graphgate.server.observability.tracing import Tracing, configure_tracing

_log = logging.getLogger("graphgate.observability")


@dataclass(frozen=True, slots=True)
class Observability:
    """The process's metrics, tracing and (when configured) scrape endpoint."""

    metrics: Metrics
    tracing: Tracing
    endpoint: MetricsEndpoint | None

    def stop(self) -> None:
        """Stop the scrape endpoint, then flush and detach the span exporter. Never raises."""
        try:
            if self.endpoint is not None:
                self.endpoint.stop()
        except Exception:  # shutting down: report, keep going
            _log.exception("metrics endpoint did not stop cleanly")
        try:
            self.tracing.shutdown()
        except Exception:
            _log.exception("span exporter did not stop cleanly")


def start_observability(
    options: ObservabilityOptions, *, metrics: Metrics | None = None
) -> Observability:
    """Configure tracing, create the metrics and open ``/metrics`` if asked.

    Raises :class:`~graphgate.server.errors.ConfigurationError` when the
    metrics address cannot be bound; nothing is left running then.
    """
    metrics = metrics if metrics is not None else Metrics()
    tracing = configure_tracing(options)
    try:
        endpoint = (
            start_metrics_endpoint(metrics, options.metrics_listen)
            if options.metrics_listen
            else None
        )
    except BaseException:
        tracing.shutdown()
        raise
    return Observability(metrics=metrics, tracing=tracing, endpoint=endpoint)
