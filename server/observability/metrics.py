"""graphgate's Prometheus series, one :class:`Metrics` object per process.

Built on ``prometheus-client``: it is the reference client of the format
Prometheus scrapes, stable, dependency-free, and gives each :class:`Metrics`
its own ``CollectorRegistry``, so tests build as many as they like and
nothing lives in module globals. (OpenTelemetry metrics would need its
Prometheus exporter, still a pre-release, for the same text.)

Every label value comes from a closed set: method names from the contract
(and the health and reflection services we serve), gRPC status code names,
rate-limit categories and query classes from the contract's enums, and a
fixed list of authentication failure reasons. Anything else is counted as
``other``. User ids, graph ids, emails and addresses never become labels:
they would make the series unbounded and put personal data in the
monitoring system.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Iterator
from typing import Protocol

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from graphgate.server.contract import INFRASTRUCTURE_SERVICES, methods
from graphgate.server.services.rate_limits import BreakerState
from graphgate.v1 import graph_pb2, policy_pb2

#: The label value of anything outside its closed set.
OTHER = "other"

#: ``ErrorInfo`` reasons of UNAUTHENTICATED refusals (server/services, interceptors).
#: A test keeps this list in step with the code.
AUTH_FAILURE_REASONS = frozenset(
    {
        "UNAUTHENTICATED",
        "CREDENTIALS_MISSING",
        "INVALID_CREDENTIALS",
        "TOKEN_INVALID",
        "TOKEN_EXPIRED",
        "TOKEN_REVOKED",
        "REVOCATION_UNAVAILABLE",
        "USER_INACTIVE",
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "FINGERPRINT_MISMATCH",
        "OPERATOR_KEY_INVALID",
    }
)

#: Category of sign-in refusals by the brute-force guard (not a contract category).
BRUTE_FORCE_CATEGORY = "brute_force"

#: Latency buckets in seconds: from the gRPC floor (~0.2 ms) to long queries.
RPC_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
#: Engine buckets: a trivial query costs about a millisecond, the role ceilings 60-300 s.
QUERY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
_QUERY_OUTCOMES = frozenset({"ok", "error", "cancelled"})
_CODES = frozenset(code.name for code in grpc.StatusCode)


def _enum_labels(names: Iterable[str], prefix: str) -> frozenset[str]:
    return frozenset(
        name.removeprefix(prefix).lower() for name in names if not name.endswith("_UNSPECIFIED")
    )


#: Rate-limit categories as the policy names them (``login``, ``query``…), plus ``unspecified``.
RATE_LIMIT_CATEGORIES = _enum_labels(
    policy_pb2.RateLimitCategory.keys(), "RATE_LIMIT_CATEGORY_"
) | {"unspecified", BRUTE_FORCE_CATEGORY}
#: Query classes as the contract names them (``read``, ``write``, ``schema_ddl``…).
QUERY_CLASSES = _enum_labels(graph_pb2.QueryClass.keys(), "QUERY_CLASS_")


def method_labels() -> frozenset[str]:
    """Every ``package.Service/Method`` a label may name.

    The contract's RPCs, and the methods of the standard services we serve
    (health, reflection) as their descriptors list them.
    """
    # Imported for their descriptors: the standard services the server registers.
    from grpc_health.v1 import health_pb2  # noqa: F401
    from grpc_reflection.v1alpha import reflection_pb2  # noqa: F401

    names = {full.lstrip("/") for full in methods()}
    pool = descriptor_pool.Default()
    for service_name in INFRASTRUCTURE_SERVICES:
        try:
            service = pool.FindServiceByName(service_name)
        except KeyError:
            continue  # a reflection version whose protos are not loaded
        names.update(f"{service_name}/{m.name}" for m in service.methods)
    return frozenset(names)


def package_version() -> str:
    """graphgate's installed version ("unknown" when run from a bare tree)."""
    try:
        return importlib.metadata.version("graphgate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class AdmissionReadings(Protocol):
    """What the admission controller exposes (``AdmissionController``)."""

    @property
    def shedding(self) -> bool:
        """True while new calls are refused."""
        ...

    @property
    def inflight(self) -> int:
        """Calls admitted and not yet finished."""
        ...

    @property
    def shed_total(self) -> int:
        """Calls refused since start."""
        ...


class BreakerReadings(Protocol):
    """What the Valkey circuit breaker exposes (``CircuitBreaker``)."""

    @property
    def state(self) -> BreakerState:
        """OPEN while Valkey is being avoided."""
        ...


class _Watched(Collector):
    """Series read from other objects at scrape time (admission, breaker).

    Their owners already keep this state; reading it when Prometheus asks
    costs nothing per call and cannot drift from the truth.
    """

    def __init__(self) -> None:
        self.admission: AdmissionReadings | None = None
        self.breakers: list[BreakerReadings] = []

    def collect(self) -> Iterator[Metric]:
        if self.admission is not None:
            a = self.admission
            yield GaugeMetricFamily(
                "graphgate_admission_shedding",
                "1 while admission control sheds new calls (C18), else 0.",
                value=1.0 if a.shedding else 0.0,
            )
            yield CounterMetricFamily(
                "graphgate_admission_shed",
                "Calls refused by admission control (process pressure or per-graph limit).",
                value=float(a.shed_total),
            )
            yield GaugeMetricFamily(
                "graphgate_admission_inflight",
                "Calls admitted by admission control and not yet finished.",
                value=float(a.inflight),
            )
        if self.breakers:
            is_open = any(b.state is BreakerState.OPEN for b in self.breakers)
            yield GaugeMetricFamily(
                "graphgate_valkey_breaker_open",
                "1 while the Valkey circuit breaker is open (per-process limits in force).",
                value=1.0 if is_open else 0.0,
            )


class Metrics:
    """The series of one graphgate process, in a registry of its own.

    Every method is cheap (a dictionary lookup and a locked add) and safe
    from any thread; none raises for an unexpected label value, which is
    counted as ``other`` instead.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        process_metrics: bool = True,
        version: str | None = None,
    ) -> None:
        """Create the series; ``process_metrics`` adds the standard process_* series."""
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._methods = method_labels()
        self._rpc_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._requests = Counter(
            "graphgate_rpc_requests_total",
            "Finished RPCs by method and gRPC status code.",
            ["method", "code"],
            registry=r,
        )
        self._duration = Histogram(
            "graphgate_rpc_duration_seconds",
            "Time a call spends in the chain and its handler (streams: the whole stream).",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self._rate_limited = Counter(
            "graphgate_rate_limit_refusals_total",
            "Calls refused by a rate limit, by category (brute_force: the sign-in guard).",
            ["category"],
            registry=r,
        )
        self._auth_failures = Counter(
            "graphgate_auth_failures_total",
            "Calls refused UNAUTHENTICATED, by ErrorInfo reason.",
            ["reason"],
            registry=r,
        )
        self._operator_failures = Counter(
            "graphgate_operator_auth_failures_total",
            "Failed operator authentications (C20 alarm: more than 5 in 5 minutes).",
            registry=r,
        )
        self._query = Histogram(
            "graphgate_engine_query_duration_seconds",
            "Engine time of Cypher statements by query class: ExecuteQuery as the server waits"
            " for its worker, StreamQuery as the worker reports it (client reading excluded).",
            ["query_class", "outcome"],
            buckets=QUERY_BUCKETS,
            registry=r,
        )
        self._ingest_rows = Counter(
            "graphgate_ingest_rows_total", "Rows loaded into graphs by ingests.", registry=r
        )
        Info("graphgate_build", "The running graphgate version.", registry=r).info(
            {"version": version or package_version()}
        )
        self._watched = _Watched()
        r.register(self._watched)
        if process_metrics:
            from prometheus_client import PlatformCollector, ProcessCollector

            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        # Zeros for the small closed sets, so rate() and alerts see the series
        # before the first event instead of an absent one.
        for reason in AUTH_FAILURE_REASONS:
            self._auth_failures.labels(reason)
        for category in RATE_LIMIT_CATEGORIES:
            self._rate_limited.labels(category)

    # --- labels ------------------------------------------------------------------------

    def method_label(self, full_method: str) -> str:
        """``package.Service/Method`` for a served method, else ``other``."""
        name = full_method.lstrip("/")
        return name if name in self._methods else OTHER

    @staticmethod
    def code_label(code: grpc.StatusCode | str) -> str:
        """The gRPC status code name (``OK``, ``UNAUTHENTICATED``…), else ``other``."""
        name = code.name if isinstance(code, grpc.StatusCode) else code.upper()
        return name if name in _CODES else OTHER

    # --- RPCs (the metrics link) ---------------------------------------------------------

    def rpc(self, full_method: str, code: grpc.StatusCode | str, seconds: float) -> None:
        """One finished RPC: its final status ``code`` and its time in the server."""
        key = (self.method_label(full_method), self.code_label(code))
        children = self._rpc_children.get(key)
        if children is None:
            # labels() validates and locks on every call; the children are
            # cached (a bounded set of keys) to keep the per-call cost at a
            # few microseconds.
            children = (self._requests.labels(*key), self._duration.labels(key[0]))
            self._rpc_children[key] = children
        children[0].inc()
        children[1].observe(max(seconds, 0.0))

    # --- refusals and security events ----------------------------------------------------

    def rate_limited(self, category: str) -> None:
        """A call refused by a rate limit of ``category``."""
        label = category.lower()
        self._rate_limited.labels(label if label in RATE_LIMIT_CATEGORIES else OTHER).inc()

    def auth_failure(self, reason: str) -> None:
        """A call refused UNAUTHENTICATED for ``reason`` (an ``ErrorInfo`` reason)."""
        label = reason.upper()
        self._auth_failures.labels(label if label in AUTH_FAILURE_REASONS else OTHER).inc()

    def operator_auth_failure(self) -> None:
        """A wrong or missing operator key."""
        self._operator_failures.inc()

    # --- engine --------------------------------------------------------------------------

    def query(self, query_class: str, seconds: float, *, outcome: str = "ok") -> None:
        """One statement's engine time; ``outcome`` is ok, error or cancelled."""
        label = query_class.lower().removeprefix("query_class_")
        self._query.labels(
            label if label in QUERY_CLASSES else OTHER,
            outcome if outcome in _QUERY_OUTCOMES else OTHER,
        ).observe(max(seconds, 0.0))

    def ingest_rows(self, rows: int) -> None:
        """Rows an ingest loaded into a graph."""
        if rows > 0:
            self._ingest_rows.inc(rows)

    # --- state owned elsewhere, read at scrape time ----------------------------------------

    def watch_admission(self, controller: AdmissionReadings) -> None:
        """Export the controller's shedding state, shed count and in-flight count."""
        self._watched.admission = controller

    def watch_breaker(self, breaker: BreakerReadings) -> None:
        """Export whether ``breaker`` (any of those watched) is open."""
        self._watched.breakers.append(breaker)

    # --- exposition ----------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
