"""What observability needs from the settings, and the parsers of its settings names.

:class:`ObservabilityOptions` is built from the one settings object
(:meth:`ObservabilityOptions.from_settings`); nothing in this package reads
the environment. The parsers below are what ``server/settings.py`` uses for
the names ``GRAPHGATE_METRICS_LISTEN``, ``GRAPHGATE_TRACE_SAMPLE_RATIO`` and
the standard ``OTEL_EXPORTER_OTLP_*`` variables. This module imports only the
standard library, so the settings module can use it without pulling in the
metrics or tracing libraries.

Security: OTLP headers often carry a vendor's API token, so they are kept out
of ``repr`` and parse errors name the position of a bad entry, never its text.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

#: The ``service.name`` of graphgate's traces.
SERVICE_NAME = "graphgate"
#: The one OTLP transport graphgate ships an exporter for.
OTLP_PROTOCOL = "grpc"
_OFF = frozenset({"off", "none", "false", "0"})


class ObservabilitySettings(Protocol):
    """The fields of ``graphgate.server.settings.Settings`` observability reads."""

    @property
    def env(self) -> enum.Enum:
        """``development`` or ``production``."""
        ...

    @property
    def metrics_listen(self) -> str | None:
        """``GRAPHGATE_METRICS_LISTEN``."""
        ...

    @property
    def otlp_endpoint(self) -> str | None:
        """``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        ...

    @property
    def otlp_headers(self) -> tuple[tuple[str, str], ...]:
        """``OTEL_EXPORTER_OTLP_HEADERS``."""
        ...

    @property
    def otlp_ca_file(self) -> Path | None:
        """``OTEL_EXPORTER_OTLP_CERTIFICATE``."""
        ...

    @property
    def trace_sample_ratio(self) -> float:
        """``GRAPHGATE_TRACE_SAMPLE_RATIO``."""
        ...


@dataclass(frozen=True, slots=True)
class ObservabilityOptions:
    """How this process exposes metrics and exports traces.

    ``metrics_listen`` is ``HOST:PORT`` of the ``/metrics`` listener, None for
    none (port 0 picks a free port: tests). ``otlp_endpoint`` is an
    ``http://`` (plaintext) or ``https://`` OTLP/gRPC collector address;
    without it spans are not recorded at all, but every call still gets a
    trace id for the audit log. ``trace_sample_ratio`` is the share of calls
    whose spans are exported.
    """

    metrics_listen: str | None = None
    otlp_endpoint: str | None = None
    otlp_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    otlp_ca_file: Path | None = None
    trace_sample_ratio: float = 1.0
    environment: str = "development"

    @classmethod
    def from_settings(cls, settings: ObservabilitySettings) -> ObservabilityOptions:
        """The options of a process configured by ``settings``."""
        return cls(
            metrics_listen=settings.metrics_listen,
            otlp_endpoint=settings.otlp_endpoint,
            otlp_headers=settings.otlp_headers,
            otlp_ca_file=settings.otlp_ca_file,
            trace_sample_ratio=settings.trace_sample_ratio,
            environment=str(settings.env.value),
        )


# --- parsers for server/settings.py (each raises ValueError) ---------------------------------


def split_listen(raw: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as host and port; port 0 allowed."""
    host, sep, port = raw.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    return host, int(port)


def parse_metrics_listen(raw: str) -> str | None:
    """``GRAPHGATE_METRICS_LISTEN``: ``HOST:PORT`` with a real port, or ``off``."""
    if raw.strip().lower() in _OFF:
        return None
    _, port = split_listen(raw)
    if port == 0:
        raise ValueError("expected a fixed port for the metrics listener, got 0")
    return raw.strip()


def parse_otlp_endpoint(raw: str) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: ``http(s)://host[:port]``, no credentials in it."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("expected an http:// or https:// collector address")
    if parts.username is not None or parts.password is not None:
        # A URL ends up in logs; tokens belong in OTEL_EXPORTER_OTLP_HEADERS.
        raise ValueError("credentials in the URL are refused; use OTEL_EXPORTER_OTLP_HEADERS")
    return raw.strip()


def parse_otlp_protocol(raw: str) -> str:
    """``OTEL_EXPORTER_OTLP_PROTOCOL``: only ``grpc`` (the exporter graphgate ships)."""
    if raw.strip().lower() != OTLP_PROTOCOL:
        raise ValueError(f"only grpc is supported, got {raw.strip()!r}")
    return OTLP_PROTOCOL


def parse_otlp_headers(raw: str) -> tuple[tuple[str, str], ...]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``key=value,key2=value2``, values URL-encoded.

    Keys become lower case (gRPC metadata keys are). Errors name the entry's
    position only: values are often API tokens.
    """
    headers: list[tuple[str, str]] = []
    for number, item in enumerate((p for p in raw.split(",") if p.strip()), start=1):
        key, sep, value = item.partition("=")
        key = unquote(key).strip().lower()
        if not sep or not key or not all(c.isalnum() or c in "-_." for c in key):
            raise ValueError(f"entry {number} is not key=value with a valid header name")
        headers.append((key, unquote(value).strip()))
    return tuple(headers)


def parse_sample_ratio(raw: str) -> float:
    """``GRAPHGATE_TRACE_SAMPLE_RATIO``: a share of calls from 0 to 1."""
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"expected a number from 0 to 1, got {raw!r}")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configuration_problems(settings: ObservabilitySettings, *, production: bool) -> list[str]:
    """Problems with the observability settings, one line each (for ``load_settings``).

    Everywhere: a CA file without an ``https://`` endpoint. In production
    (C10): a plaintext endpoint that is not on this host (a collector
    sidecar on loopback is fine), a CA file that cannot be read.
    """
    problems: list[str] = []
    endpoint = settings.otlp_endpoint
    scheme = urlsplit(endpoint).scheme if endpoint else ""
    if settings.otlp_ca_file is not None and scheme != "https":
        problems.append(
            "OTEL_EXPORTER_OTLP_CERTIFICATE: needs an https:// OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    if production and endpoint and scheme == "http":
        host = urlsplit(endpoint).hostname or ""
        if not _loopback(host):
            problems.append(
                "OTEL_EXPORTER_OTLP_ENDPOINT: production requires https:// unless the"
                " collector is on this host (localhost)"
            )
    if production and settings.otlp_ca_file is not None:
        try:
            with settings.otlp_ca_file.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            problems.append(
                f"OTEL_EXPORTER_OTLP_CERTIFICATE: {settings.otlp_ca_file} cannot be read"
                f" ({exc.strerror or exc})"
            )
    return problems
