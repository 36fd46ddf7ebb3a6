"""OpenTelemetry tracing: the process's tracer provider and its exporters.

:func:`configure_tracing` installs one SDK ``TracerProvider`` for the process
(resource ``service.name=graphgate``, ``service.version``,
``deployment.environment.name``, ``service.instance.id``) so that every call
gets a real trace id: the telemetry link puts it in the call state, the
audit log writes it into every event (C20). Spans are *recorded* only when
an OTLP collector is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``); then a
share ``trace_sample_ratio`` of calls is exported over OTLP/gRPC in the
background. Without a collector spans cost only their ids.

:func:`memory_spans` is the test helper: it captures the spans the process
records in an in-memory exporter.

The OpenTelemetry API keeps one global provider per process and refuses to
replace it; a second :func:`configure_tracing` in the same process (tests)
adds its exporters to the provider already installed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from graphgate.server.observability.metrics import package_version
from graphgate.server.observability.options import SERVICE_NAME, ObservabilityOptions

_log = logging.getLogger("graphgate.tracing")
#: Seconds one export to the collector may take before it is dropped.
_EXPORT_TIMEOUT_SECONDS = 10.0


def build_resource(options: ObservabilityOptions, *, version: str | None = None) -> Resource:
    """The attributes every span of this process carries."""
    return Resource(
        {
            "service.name": SERVICE_NAME,
            "service.version": version or package_version(),
            "service.instance.id": uuid.uuid4().hex,
            "deployment.environment.name": options.environment,
        }
    )


def build_sampler(options: ObservabilityOptions) -> Sampler:
    """Record ``trace_sample_ratio`` of calls when exporting; none otherwise.

    An unsampled span still has a valid trace id, which is all the audit
    log needs.
    """
    if not options.otlp_endpoint:
        return ParentBased(ALWAYS_OFF)
    return ParentBased(TraceIdRatioBased(options.trace_sample_ratio))


def otlp_exporter(options: ObservabilityOptions) -> SpanExporter:
    """The OTLP/gRPC span exporter for ``options.otlp_endpoint``.

    ``https://`` uses TLS with the system roots, or ``otlp_ca_file``;
    ``http://`` is plaintext. Raises ValueError without an endpoint.
    """
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    if not options.otlp_endpoint:
        raise ValueError("no OTLP endpoint configured")
    secure = urlsplit(options.otlp_endpoint).scheme == "https"
    credentials = None
    if secure:
        roots = options.otlp_ca_file.read_bytes() if options.otlp_ca_file else None
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return OTLPSpanExporter(
        endpoint=options.otlp_endpoint,
        insecure=not secure,
        credentials=credentials,
        headers=options.otlp_headers or None,
        timeout=_EXPORT_TIMEOUT_SECONDS,
        compression=grpc.Compression.NoCompression,
    )


class _Detachable(SpanProcessor):
    """A processor that can leave the global provider (which has no remove)."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner
        self._attached = True

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if self._attached:
            self._inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self._attached:
            self._inner.on_end(span)

    def shutdown(self) -> None:
        if self._attached:
            self._attached = False
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis) if self._attached else True


def _installed_provider() -> TracerProvider | None:
    current = trace.get_tracer_provider()
    return current if isinstance(current, TracerProvider) else None


def _provider(options: ObservabilityOptions, *, version: str | None) -> tuple[TracerProvider, bool]:
    """The global SDK provider, installing one built from ``options`` if there is none."""
    existing = _installed_provider()
    if existing is not None:
        return existing, False
    provider = TracerProvider(
        sampler=build_sampler(options),
        resource=build_resource(options, version=version),
        shutdown_on_exit=False,  # Tracing.shutdown() flushes on the runner's way out
    )
    trace.set_tracer_provider(provider)
    if _installed_provider() is not provider:
        _log.warning("another tracer provider is installed; graphgate's spans go there")
    return provider, True


@dataclass(frozen=True, slots=True)
class Tracing:
    """The process's tracing: its provider and the exporters this setup added."""

    provider: TracerProvider
    processors: tuple[SpanProcessor, ...]
    installed: bool

    @property
    def exporting(self) -> bool:
        """True when spans leave the process (an OTLP collector is configured)."""
        return bool(self.processors)

    def force_flush(self, timeout_seconds: float = 10.0) -> bool:
        """Send every finished span now; False if that took longer than the timeout."""
        return all(p.force_flush(int(timeout_seconds * 1000)) for p in self.processors)

    def shutdown(self) -> None:
        """Flush and detach this setup's exporters (the provider stays, as the API requires)."""
        for processor in self.processors:
            processor.shutdown()


def configure_tracing(options: ObservabilityOptions, *, version: str | None = None) -> Tracing:
    """Install the process's tracer provider and, when configured, the OTLP exporter.

    Call once at start, before serving; :meth:`Tracing.shutdown` on the way out.
    """
    provider, installed = _provider(options, version=version)
    processors: list[SpanProcessor] = []
    if options.otlp_endpoint:
        batch = BatchSpanProcessor(
            otlp_exporter(options),
            max_queue_size=2048,
            schedule_delay_millis=5000,
            max_export_batch_size=512,
            export_timeout_millis=_EXPORT_TIMEOUT_SECONDS * 1000,
        )
        processors.append(_Detachable(batch))
        provider.add_span_processor(processors[-1])
        _log.info("exporting traces to %s", options.otlp_endpoint)
    return Tracing(provider=provider, processors=tuple(processors), installed=installed)


@contextmanager
def memory_spans() -> Iterator[InMemorySpanExporter]:
    """Capture the spans this process records while the block runs (tests).

    Installs a recording provider if none is installed yet. A provider that
    :func:`configure_tracing` installed without a collector records nothing,
    so this helper then captures nothing either.
    """
    provider = _installed_provider()
    if provider is None:
        provider = TracerProvider(
            sampler=ALWAYS_ON, resource=build_resource(ObservabilityOptions(environment="test"))
        )
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = _Detachable(SimpleSpanProcessor(exporter))
    provider.add_span_processor(processor)
    try:
        yield exporter
    finally:
        processor.shutdown()
