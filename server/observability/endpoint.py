"""The Prometheus scrape endpoint: ``GET /metrics`` on a small HTTP listener.

It runs in a daemon thread beside the gRPC server, so a scrape never waits
for the event loop and a busy loop never delays a scrape; the series are
thread-safe. Only ``/metrics`` answers; every other path is 404.

Security: the endpoint has no authentication, like every Prometheus
target. Bind it to an interface only the monitoring network reaches (never
the load balancer's); the series hold no user data (see :mod:`.metrics`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from graphgate.server.errors import ConfigurationError
from graphgate.server.observability.metrics import Metrics
from graphgate.server.observability.options import split_listen

_log = logging.getLogger("graphgate.metrics")
_PATH = "/metrics"

_StartResponse = Callable[..., Any]
_App = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per scrape; threads never outlive the process."""

    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No access log: a scrape every few seconds is noise on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


def _only_metrics(app: _App) -> _App:
    def serve(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != _PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found; metrics are at /metrics\n"]
        return app(environ, start_response)

    return serve


class MetricsEndpoint:
    """A running ``/metrics`` listener; :meth:`stop` ends it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The bound port (useful when the listen address asked for port 0)."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The scrape URL of this endpoint."""
        host = str(self._server.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}{_PATH}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening; blocks for at most the poll interval plus ``timeout``. Idempotent."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)
        _log.info("metrics endpoint stopped")


def start_metrics_endpoint(metrics: Metrics, listen: str) -> MetricsEndpoint:
    """Serve ``metrics`` at ``http://<listen>/metrics`` until :meth:`MetricsEndpoint.stop`.

    ``listen`` is ``HOST:PORT`` (``[::1]:9464`` for IPv6; port 0 picks a free
    one). Raises :class:`ConfigurationError` when the address cannot be bound.
    """
    host, port = split_listen(listen)
    server_class = _Server6 if ":" in host else _Server
    try:
        server = make_server(
            host,
            port,
            _only_metrics(make_wsgi_app(metrics.registry)),
            server_class=server_class,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        raise ConfigurationError(
            [f"GRAPHGATE_METRICS_LISTEN: cannot listen on {listen} ({exc.strerror or exc})"]
        ) from exc
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.5},
        name="graphgate-metrics",
        daemon=True,
    )
    thread.start()
    endpoint = MetricsEndpoint(server, thread)
    _log.info("metrics at %s", endpoint.url)
    return endpoint
