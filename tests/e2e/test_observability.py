"""Metrics, the scrape endpoint and traces, through a real channel and real HTTP.

The server runs the production chain with the metrics link inserted right
after telemetry (where ``interceptor_chain`` puts it once wired), on the
shared embedded stores. A short workload - sign-up, calls, refusals of
every kind, load shedding - is then read back from ``/metrics`` over HTTP,
and one RPC's spans from an in-memory exporter.
"""

from __future__ import annotations

import ast
import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from graphgate.interceptors.chain import Link
from graphgate.interceptors.metrics import MetricsInterceptor
from graphgate.server import app
from graphgate.server.audit import AuditEventType, AuditLog
from graphgate.server.errors import InvalidArgument
from graphgate.server.lifecycle import Stores
from graphgate.server.observability import (
    EngineObserver,
    Metrics,
    MetricsEndpoint,
    ObservabilityOptions,
    configure_tracing,
    memory_spans,
    start_metrics_endpoint,
)
from graphgate.server.observability.metrics import AUTH_FAILURE_REASONS, OTHER
from graphgate.server.observability.options import (
    configuration_problems,
    parse_metrics_listen,
    parse_otlp_endpoint,
    parse_otlp_headers,
    parse_otlp_protocol,
    parse_sample_ratio,
)
from graphgate.server.services.admission import AdmissionController, Pressure
from graphgate.server.services.rate_limits import CircuitBreaker
from graphgate.server.settings import Environment, Settings, setting_names
from graphgate.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    graph_pb2,
    graph_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
)
from tests.conftest import custom_server, status_of
from tests.support import Account, bearer, register, wait_for_event

REPO = Path(__file__).resolve().parents[2]
GiB = 2**30
IPV4 = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


class Dial:
    """A pressure source the test turns (admission control samples it)."""

    def __init__(self) -> None:
        self.memory_bytes = 0

    def sample(self) -> Pressure:
        return Pressure(self.memory_bytes, 0.0)


class Observed:
    """A server with the metrics link, its metrics, endpoint and channel."""

    def __init__(
        self,
        metrics: Metrics,
        endpoint: MetricsEndpoint,
        channel: aio.Channel,
        dial: Dial,
        admission: AdmissionController,
    ) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        self.channel = channel
        self.dial = dial
        self.admission = admission

    async def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """``/metrics`` over HTTP, as {(sample name, labels): value}."""
        async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
            reply = await client.get(self.endpoint.url)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(reply.text)
            for sample in family.samples
        }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value; 0 when the series does not exist."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def observed(
    settings: Settings, stores: Stores, audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Observed]:
    metrics = Metrics()
    production_chain = app.interceptor_chain

    def chain(services: Any) -> list[Link]:
        links = production_chain(services)
        links.insert(1, MetricsInterceptor(metrics=metrics))  # right after telemetry
        return links

    monkeypatch.setattr(app, "interceptor_chain", chain)
    dial = Dial()
    endpoint = start_metrics_endpoint(metrics, "127.0.0.1:0")
    try:
        async with custom_server(
            settings,
            stores,
            audit_log,
            pressure=dial,
            # Two analyses a minute, so the third is refused.
            rate_limits=settings.rate_limits + ",analytics=2/60",
        ) as (server, services):
            metrics.watch_admission(services.admission)
            metrics.watch_breaker(services.breaker)
            async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield Observed(metrics, endpoint, channel, dial, services.admission)
    finally:
        endpoint.stop()


async def refused(call: Any) -> grpc.StatusCode:
    """The status of a call that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        await call
    return status_of(caught.value)


async def workload(observed: Observed) -> Account:
    """Sign-up, good calls and one refusal of each kind."""
    channel = observed.channel
    account = await register(channel)
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    graphs = graph_pb2_grpc.GraphServiceStub(channel)
    operator = operator_pb2_grpc.OperatorServiceStub(channel)
    me = auth_pb2.GetCurrentUserRequest()
    await auth.GetCurrentUser(me, metadata=bearer(account.token))
    assert await refused(auth.GetCurrentUser(me)) == grpc.StatusCode.UNAUTHENTICATED
    bad_token = auth.GetCurrentUser(me, metadata=bearer("not-a-jwt"))
    assert await refused(bad_token) == grpc.StatusCode.UNAUTHENTICATED
    bad_key = operator.GetAdmission(
        operator_pb2.GetAdmissionRequest(), metadata=[("x-api-key", "wrong-operator-key")]
    )
    assert await refused(bad_key) == grpc.StatusCode.UNAUTHENTICATED
    analyze = graph_pb2.AnalyzeQueryRequest(query="RETURN 1")
    for _ in range(2):
        await graphs.AnalyzeQuery(analyze, metadata=bearer(account.token))
    third = graphs.AnalyzeQuery(analyze, metadata=bearer(account.token))
    assert await refused(third) == grpc.StatusCode.RESOURCE_EXHAUSTED
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    # Memory over the start threshold: admission control sheds, then recovers.
    observed.dial.memory_bytes = 7 * GiB
    observed.admission.sample_now()
    policy = auth.GetPasswordPolicy(auth_pb2.GetPasswordPolicyRequest())
    assert await refused(policy) == grpc.StatusCode.UNAVAILABLE
    return account


async def test_metrics_endpoint_exposes_the_series_of_a_workload(observed: Observed) -> None:
    account = await workload(observed)
    shedding = await observed.scrape()
    assert value(shedding, "graphgate_admission_shedding") == 1
    observed.dial.memory_bytes = 0
    observed.admission.sample_now()
    samples = await observed.scrape()

    requests = "graphgate_rpc_requests_total"
    auth = "graphgate.v1.AuthService/"
    assert value(samples, requests, method=auth + "Register", code="OK") == 1
    assert value(samples, requests, method=auth + "GetCurrentUser", code="OK") == 1
    assert value(samples, requests, method=auth + "GetCurrentUser", code="UNAUTHENTICATED") == 2
    analyze = "graphgate.v1.GraphService/AnalyzeQuery"
    assert value(samples, requests, method=analyze, code="OK") == 2
    assert value(samples, requests, method=analyze, code="RESOURCE_EXHAUSTED") == 1
    admission = "graphgate.v1.OperatorService/GetAdmission"
    assert value(samples, requests, method=admission, code="UNAUTHENTICATED") == 1
    assert value(samples, requests, method=auth + "GetPasswordPolicy", code="UNAVAILABLE") == 1
    assert value(samples, requests, method="grpc.health.v1.Health/Check", code="OK") == 1

    duration = "graphgate_rpc_duration_seconds"
    assert value(samples, duration + "_count", method=auth + "Register") == 1
    assert 0 < value(samples, duration + "_sum", method=auth + "Register") < 30
    assert value(samples, duration + "_bucket", method=auth + "Register", le="+Inf") == 1

    failures = "graphgate_auth_failures_total"
    assert value(samples, failures, reason="CREDENTIALS_MISSING") == 1
    assert value(samples, failures, reason="TOKEN_INVALID") == 1
    assert value(samples, failures, reason="OPERATOR_KEY_INVALID") == 1
    assert value(samples, "graphgate_operator_auth_failures_total") == 1
    refusals = "graphgate_rate_limit_refusals_total"
    assert value(samples, refusals, category="analytics") == 1
    assert value(samples, refusals, category="login") == 0  # present before any refusal

    assert value(samples, "graphgate_admission_shedding") == 0
    assert value(samples, "graphgate_admission_shed_total") == 1
    assert value(samples, "graphgate_admission_inflight") == 0
    assert value(samples, "graphgate_valkey_breaker_open") == 0
    assert any(name == "graphgate_build_info" for name, _ in samples)
    assert value(samples, "process_resident_memory_bytes") > 0

    # C20 / privacy: no label names a person, an address or an object.
    forbidden = {account.email, account.user_id, account.email.split("@")[0], "127.0.0.1"}
    for _, labels in samples:
        for label, text in labels:
            assert not any(f in text for f in forbidden), (label, text)
            assert "@" not in text, text
            assert not IPV4.search(text), text
            assert not UUID.search(text), text


async def test_metrics_endpoint_serves_only_metrics(observed: Observed) -> None:
    base = observed.endpoint.url.removesuffix("/metrics")
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        assert (await client.get(base + "/")).status_code == 404
        assert (await client.get(base + "/metrics/extra")).status_code == 404
        assert (await client.post(observed.endpoint.url)).status_code == 405


def test_labels_are_bounded() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.rpc("/graphgate.v1.AuthService/Login", grpc.StatusCode.OK, 0.01)
    metrics.rpc("/attacker.Chosen/alice@example.com", "OK", 0.01)
    metrics.rpc("/graphgate.v1.AuthService/Login", "NOT_A_CODE", 0.01)
    metrics.auth_failure("reason for user 5f0c…")
    metrics.rate_limited("10.0.0.1")
    metrics.query("QUERY_CLASS_READ", 0.001)
    metrics.query("DROP EVERYTHING", 0.001, outcome="weird")
    text = metrics.exposition().decode()
    assert 'method="other"' in text
    assert "alice" not in text
    assert "attacker" not in text
    assert 'code="other"' in text
    assert 'reason="other"' in text
    assert 'category="other"' in text
    assert 'query_class="read"' in text
    assert 'outcome="other",query_class="other"' in text
    assert "10.0.0.1" not in text
    assert "5f0c" not in text
    assert metrics.method_label("/grpc.health.v1.Health/Check") == "grpc.health.v1.Health/Check"
    assert metrics.method_label("graphgate.v1.GraphService/ExecuteQuery") != OTHER


def _string_constants(node: ast.AST) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.value


def test_auth_failure_reasons_are_in_step_with_the_code() -> None:
    """Every ``Unauthenticated(reason=...)`` in the server is a known label value."""
    found: set[str] = set()
    for folder in ("server", "interceptors"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "Unauthenticated"
                ):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "reason":
                        found.update(_string_constants(keyword.value))
    found.update({"API_KEY_INVALID", "API_KEY_EXPIRED"})  # built by Authenticator._refuse_key
    assert found, "no Unauthenticated(reason=...) found: the scan is broken"
    assert found <= AUTH_FAILURE_REASONS, found - AUTH_FAILURE_REASONS


async def test_a_trace_shows_the_rpc_span_and_the_audit_trace_id(
    observed: Observed, audit_log: AuditLog
) -> None:
    with memory_spans() as exporter:
        account = await register(observed.channel)
        auth = auth_pb2_grpc.AuthServiceStub(observed.channel)
        await auth.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(),
            metadata=[*bearer(account.token), ("x-request-id", "trace-test-0001")],
        )
        spans = list(exporter.get_finished_spans())
    by_name = {s.name: s for s in spans}
    span = by_name["graphgate.v1.AuthService/GetCurrentUser"]
    assert span.kind is SpanKind.SERVER
    attributes = dict(span.attributes or {})
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.method"] == "/graphgate.v1.AuthService/GetCurrentUser"
    assert attributes["graphgate.request_id"] == "trace-test-0001"
    assert attributes["rpc.grpc.status_code"] == "OK"
    assert attributes["graphgate.caller_kind"] == "user"
    assert span.resource.attributes["service.name"] == "graphgate"
    for recorded in spans:
        for text in map(str, (recorded.attributes or {}).values()):
            assert account.email not in text
            assert account.password not in text

    # The audit event of the sign-up carries the trace id of its RPC's span (C20).
    registered = by_name["graphgate.v1.AuthService/Register"]
    event = await wait_for_event(
        audit_log, AuditEventType.USER_REGISTERED.value, subject_user_id=account.user_id
    )
    assert registered.context is not None
    assert event["trace_id"] == format(registered.context.trace_id, "032x")


async def test_engine_calls_are_child_spans_and_query_samples(
    observed: Observed, stores: Stores
) -> None:
    account = await register(observed.channel)
    graphs = graph_pb2_grpc.GraphServiceStub(observed.channel)
    created = await graphs.CreateGraph(
        graph_pb2.CreateGraphRequest(name="observed"), metadata=bearer(account.token)
    )
    graph_id = created.graph.graph_id
    engine = stores.engine
    observer = EngineObserver(observed.metrics)
    tracer = trace.get_tracer("tests")
    limits: dict[str, Any] = {
        "read_only": True,
        "timeout_seconds": 10.0,
        "row_limit": 10,
        "max_result_bytes": 2**20,
    }
    stream_limits = {k: v for k, v in limits.items() if k != "max_result_bytes"}
    with memory_spans() as exporter:
        with tracer.start_as_current_span("rpc") as parent:
            with observer.query("READ", operation="execute"):
                answer = await engine.execute(graph_id, "RETURN 1 AS one", {}, **limits)
            with pytest.raises(InvalidArgument):
                with observer.query("READ", operation="execute"):
                    await engine.execute(graph_id, "RETURN nosuchvariable", {}, **limits)
            with observer.query("READ", operation="stream") as streamed:
                stream = engine.stream(
                    graph_id, "UNWIND range(1, 3) AS n RETURN n", {}, **stream_limits
                )
                async for message in stream:
                    if message.HasField("summary"):
                        # The engine's own time, as the graph service reports it.
                        streamed.engine_seconds = 1234.0
        spans = [s for s in exporter.get_finished_spans() if s.name.startswith("graphgate.engine")]
    assert answer.row_count == 1
    names = [s.name for s in spans]
    assert names == ["graphgate.engine/execute"] * 2 + ["graphgate.engine/stream"]
    good, bad, _ = spans
    for span in spans:
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {})["graphgate.query_class"] == "read"
        assert "nosuchvariable" not in str(span.attributes) + str(span.status.description)
    assert good.status.status_code is StatusCode.UNSET
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == "InvalidArgument"

    samples = await observed.scrape()
    histogram = "graphgate_engine_query_duration_seconds_count"
    assert value(samples, histogram, query_class="read", outcome="ok") == 2
    assert value(samples, histogram, query_class="read", outcome="error") == 1
    total = "graphgate_engine_query_duration_seconds_sum"
    assert value(samples, total, query_class="read", outcome="ok") > 1234.0  # reported time


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A stand-in OTLP collector: keeps the span names and resources it receives."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, str]]] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans += [(span.name, resource) for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    # A thread-pool server: the exporter's background thread calls it while
    # the test's event loop waits for the flush.
    received = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # The generated OTLP stubs carry no annotations.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received, port
    server.stop(0)


async def test_spans_are_exported_over_otlp_when_configured(
    observed: Observed, collector: tuple[Collector, int]
) -> None:
    received, port = collector
    options = ObservabilityOptions(
        otlp_endpoint=f"http://127.0.0.1:{port}", environment="development"
    )
    tracing = configure_tracing(options)
    try:
        with memory_spans():  # makes sure the provider records, whoever installed it
            auth = auth_pb2_grpc.AuthServiceStub(observed.channel)
            await auth.GetPasswordPolicy(auth_pb2.GetPasswordPolicyRequest())
        assert await asyncio.to_thread(tracing.force_flush, 10.0)
    finally:
        await asyncio.to_thread(tracing.shutdown)
    names = [name for name, _ in received.spans]
    assert "graphgate.v1.AuthService/GetPasswordPolicy" in names
    resource = dict(received.spans[0][1])
    assert resource["service.name"] == "graphgate"


def test_observability_settings_parsers() -> None:
    assert parse_metrics_listen("0.0.0.0:9464") == "0.0.0.0:9464"
    assert parse_metrics_listen("[::]:9464") == "[::]:9464"
    assert parse_metrics_listen("off") is None
    for bad in ("9464", "host:", "host:0", "host:70000"):
        with pytest.raises(ValueError, match=r"HOST:PORT|fixed port"):
            parse_metrics_listen(bad)
    assert parse_otlp_endpoint("https://otel.internal:4317") == "https://otel.internal:4317"
    for bad in ("otel.internal:4317", "ftp://x", "https://user:pw@otel:4317"):
        with pytest.raises(ValueError, match=r"expected|refused") as caught:
            parse_otlp_endpoint(bad)
        assert "pw" not in str(caught.value)
    assert parse_otlp_protocol("GRPC") == "grpc"
    with pytest.raises(ValueError, match="only grpc"):
        parse_otlp_protocol("http/protobuf")
    assert parse_otlp_headers("Api-Key=s%3Dcret, x-team=a") == (
        ("api-key", "s=cret"),
        ("x-team", "a"),
    )
    with pytest.raises(ValueError, match="not key=value") as caught:
        parse_otlp_headers("ok=1,tok3n-value-without-name")
    assert "tok3n" not in str(caught.value)
    assert "entry 2" in str(caught.value)
    assert parse_sample_ratio("0.25") == 0.25
    with pytest.raises(ValueError, match="from 0 to 1"):
        parse_sample_ratio("1.5")


class _FakeSettings:
    def __init__(self, **values: Any) -> None:
        self.env = Environment.PRODUCTION
        self.metrics_listen: str | None = None
        self.otlp_endpoint: str | None = None
        self.otlp_headers: tuple[tuple[str, str], ...] = ()
        self.otlp_ca_file: Path | None = None
        self.trace_sample_ratio = 1.0
        self.__dict__.update(values)


def test_production_refuses_plaintext_export_off_host(tmp_path: Path) -> None:
    def problems(**values: Any) -> list[str]:
        return configuration_problems(_FakeSettings(**values), production=True)

    assert problems(otlp_endpoint="http://127.0.0.1:4317") == []
    assert problems(otlp_endpoint="http://localhost:4317") == []
    assert problems(otlp_endpoint="https://otel.internal:4317") == []
    assert "requires https://" in problems(otlp_endpoint="http://otel.internal:4317")[0]
    missing = tmp_path / str(uuid.uuid4())
    found = problems(otlp_endpoint="https://otel.internal:4317", otlp_ca_file=missing)
    assert "cannot be read" in found[0]
    assert "needs an https://" in problems(otlp_ca_file=missing)[0]
    options = ObservabilityOptions.from_settings(_FakeSettings(otlp_endpoint="https://o:4317"))
    assert options.environment == "production"
    assert options.otlp_endpoint == "https://o:4317"


def test_audit_events_doc_lists_every_event_type() -> None:
    text = (REPO / "docs/operations/audit-events.md").read_text(encoding="utf-8")
    missing = [e.value for e in AuditEventType if f"`{e.value}`" not in text]
    assert not missing, missing


def test_operator_guide_documents_every_setting() -> None:
    text = (REPO / "docs/operations/guide.md").read_text(encoding="utf-8")
    missing = [name for name in setting_names() if f"`{name}`" not in text]
    assert not missing, missing


def test_documented_series_exist() -> None:
    """Every ``graphgate_*`` series the operator docs name is one Metrics exports."""
    metrics = Metrics(process_metrics=False)
    metrics.watch_admission(AdmissionController(source=Dial()))
    metrics.watch_breaker(CircuitBreaker())
    metrics.rpc("/graphgate.v1.AuthService/Login", "OK", 0.01)
    metrics.query("read", 0.01)
    metrics.ingest_rows(1)
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    exported = {sample.name for family in families for sample in family.samples}
    exported |= {family.name for family in families}  # histograms by their base name
    for page in ("guide.md", "alarms.md"):
        text = (REPO / "docs/operations" / page).read_text(encoding="utf-8")
        named = set(re.findall(r"\bgraphgate_[a-z_]+[a-z]\b", text))
        assert named, page
        assert named <= exported, (page, named - exported)
