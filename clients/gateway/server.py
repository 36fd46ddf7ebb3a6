"""Serving the sidecar with uvicorn, programmatically, on the caller's loop.

:func:`run_gateway` is what ``graphgate gateway`` and ``graphgate serve``
call; :func:`start_gateway` returns a handle (tests, benchmarks). uvicorn is
configured for the edge: HTTP/1.1 through h11 with a ceiling on what it
buffers of a head still arriving (twice the header limit; past it uvicorn
answers 400 and closes), :class:`HeaderLimitMiddleware` answering 431 for
complete heads over the limit,
``limit_concurrency`` as a backstop above the admission thresholds,
``proxy_headers=False`` (the peer address is the connection's; any
``X-Forwarded-For`` is passed upstream for the gRPC server's trusted-proxy
walk, never believed here), no ``Server`` header, no access log by default.

uvicorn's own signal handling is switched off: the caller (the ``graphgate``
runner) owns SIGINT/SIGTERM and stops the sidecar through ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from graphgate.clients.gateway.app import create_app
from graphgate.clients.gateway.options import GatewayOptions

_START_TIMEOUT = 30.0


class _Server(uvicorn.Server):
    """uvicorn's server, minus signal handlers: the embedding process owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(options: GatewayOptions, app: object, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]  # any ASGI app; uvicorn's union is narrower
        host=host,
        port=port,
        http="h11",
        ws="none",
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        access_log=options.access_log,
        log_config=None,
        limit_concurrency=options.limit_concurrency,
        h11_max_incomplete_event_size=2 * options.header_limit,
        timeout_graceful_shutdown=max(1, round(options.shutdown_grace_seconds)),
        ssl_certfile=options.tls_certfile,
        ssl_keyfile=options.tls_keyfile,
    )


class RunningGateway:
    """A sidecar serving on ``host:port`` until :meth:`stop`."""

    def __init__(
        self, app: Starlette, server: _Server, task: asyncio.Task[None], host: str, port: int
    ) -> None:
        self.app = app
        """The served app (``app.state.admission`` holds the admission controller)."""
        self._server = server
        self._task = task
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The sidecar's base URL (``http://127.0.0.1:8080``)."""
        scheme = "https" if self._server.config.ssl_certfile else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def wait(self) -> None:
        """Until the server stops (by :meth:`stop`, or by failing)."""
        await asyncio.shield(self._task)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, give requests in flight the configured grace, close upstream.

        ``grace`` is accepted for the benchmark harness's ``RunningServer``
        contract; the grace configured in the options applies.
        """
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted
    # sockets whose proto says TCP; without it every response written in two
    # parts waits for a delayed ACK (40 ms on Linux). Accepted sockets also
    # inherit the listening socket's TCP_NODELAY, set here for any loop.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def start_gateway(options: GatewayOptions, host: str, port: int) -> RunningGateway:
    """Bind ``host:port`` (0: a free port) and serve the sidecar in a task.

    Returns once it accepts connections. Raises ``OSError`` when the address
    cannot be bound and ``RuntimeError`` when uvicorn fails to start.
    """
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    app = create_app(options)
    server = _Server(_config(options, app, host, bound_port))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="graphgate-gateway")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT
    while not server.started:
        if task.done() or loop.time() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the REST sidecar did not start (see the log)")
        await asyncio.sleep(0.01)
    return RunningGateway(app, server, task, host, bound_port)


async def run_gateway(
    options: GatewayOptions,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the sidecar on ``host:port`` until ``stop`` is set (or the task is
    cancelled), then drain gracefully. ``ready`` is set once it accepts
    connections. Raises ``OSError`` when the address cannot be bound."""
    running = await start_gateway(options, host, port)
    if ready is not None:
        ready.set()
    try:
        if stop is None:
            await running.wait()
        else:
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(running.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
    finally:
        await running.stop()
