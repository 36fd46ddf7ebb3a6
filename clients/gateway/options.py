"""The sidecar's configuration: one frozen object, built by the caller.

Nothing in :mod:`graphgate.clients.gateway` reads the environment; the
``graphgate`` command line builds :class:`GatewayOptions` from the settings
and hands it to :func:`~graphgate.clients.gateway.create_app` /
:func:`~graphgate.clients.gateway.run_gateway`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: C22: request bodies above this are refused with 413.
DEFAULT_BODY_LIMIT = 8 * 1024 * 1024
#: C22: request headers (names and values, summed) above this are refused with 431.
DEFAULT_HEADER_LIMIT = 8 * 1024


@dataclass(frozen=True, slots=True)
class AdmissionThresholds:
    """When the sidecar sheds requests (C18), with hysteresis.

    Shedding starts once ``shed_at`` requests are in flight and stops only
    when fewer than ``resume_below`` remain, so the sidecar does not flap at
    the edge. Shed requests get 503 with ``Retry-After: retry_after_seconds``.
    ``/healthz`` is never shed.
    """

    shed_at: int = 512
    resume_below: int = 384
    retry_after_seconds: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.resume_below <= self.shed_at:
            raise ValueError("admission thresholds need 0 < resume_below <= shed_at")
        if self.retry_after_seconds < 1:
            raise ValueError("retry_after_seconds must be at least 1")


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """Everything the REST sidecar needs to know, decided by its caller.

    ``upstream`` is the gRPC target (``127.0.0.1:50051``). The gRPC server
    believes the ``x-forwarded-for`` the sidecar sends only when the
    sidecar's own address is in the server's ``TRUSTED_PROXIES``; without
    that, every browser shares the sidecar's address for brute-force
    protection and rate limits.
    """

    upstream: str
    #: Origins (``https://console.example.com``) allowed to call the API from
    #: a browser; requests from other origins get no CORS headers.
    cors_origins: tuple[str, ...] = ()
    body_limit: int = DEFAULT_BODY_LIMIT
    header_limit: int = DEFAULT_HEADER_LIMIT
    #: True when the sidecar is reached over HTTPS through a TLS-terminating
    #: proxy: turns on ``Strict-Transport-Security``.
    tls: bool = False
    #: Certificate and key to serve HTTPS here (implies ``tls``).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    hsts_max_age: int = 63_072_000
    admission: AdmissionThresholds = field(default_factory=AdmissionThresholds)
    #: Deadline given to upstream calls when the client sends no ``Grpc-Timeout``.
    default_timeout_seconds: float = 30.0
    #: Deadline for streaming calls without ``Grpc-Timeout`` (long queries, ingest).
    stream_timeout_seconds: float = 600.0
    #: No client may ask for a longer deadline than this.
    max_timeout_seconds: float = 3600.0
    #: Extra ``connect-src`` origins for the console's CSP: the S3 endpoint the
    #: presigned uploads go to (``https://bucket.s3.eu-west-1.amazonaws.com``).
    upload_origins: tuple[str, ...] = ()
    #: A ``FileDescriptorSet`` with source info (``build/graphgate.binpb``):
    #: its comments become the OpenAPI descriptions. Without it the document
    #: has no prose.
    descriptor_set: Path | None = None
    #: Serve the web console at ``/``.
    console: bool = True
    #: Hard ceiling for uvicorn (connections plus tasks): a backstop above
    #: the admission thresholds; uvicorn answers plain 503 past it.
    limit_concurrency: int = 2048
    #: Seconds a shutting-down sidecar gives in-flight requests.
    shutdown_grace_seconds: float = 10.0
    #: uvicorn's access log (one line per request, to the ``uvicorn.access`` logger).
    access_log: bool = False

    @property
    def https(self) -> bool:
        """True when clients reach the sidecar over HTTPS (HSTS is sent)."""
        return self.tls or self.tls_certfile is not None

    def __post_init__(self) -> None:
        problems = []
        if not self.upstream:
            problems.append("upstream must name the gRPC server (host:port)")
        if self.body_limit <= 0 or self.header_limit <= 0:
            problems.append("body_limit and header_limit must be positive")
        for origin in (*self.cors_origins, *self.upload_origins):
            if origin == "*" or "://" not in origin or origin.endswith("/"):
                problems.append(f"origin {origin!r} must be scheme://host[:port], never '*'")
        if not 0 < self.default_timeout_seconds <= self.max_timeout_seconds:
            problems.append("default_timeout_seconds must be in (0, max_timeout_seconds]")
        if not 0 < self.stream_timeout_seconds <= self.max_timeout_seconds:
            problems.append("stream_timeout_seconds must be in (0, max_timeout_seconds]")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            problems.append("tls_certfile and tls_keyfile go together")
        if self.limit_concurrency <= self.admission.shed_at:
            problems.append("limit_concurrency must be above admission.shed_at")
        if problems:
            raise ValueError("; ".join(problems))
