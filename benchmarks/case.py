"""What a benchmark case is: a server to start and a call to make against it.

A case runs in three processes. The harness (this process) only holds the
`Case` description; the server under test runs in one spawned process and the
load generator in another, so neither shares a GIL with the other or with the
harness. Functions cannot travel to a spawned process, so the harness sends
each one as its import path (``"package.module:qualname"``, see `import_path`)
and the child imports it. That is why every function a case names must be
defined at module level, and why a case module keeps heavy imports (the
graphgate server, the engine) inside the functions that need them: listing
cases, and the load generator, then never pay for them.

The contracts, in the order the harness uses them:

1. ``server(address)`` runs in the server process, builds and starts the
   server on ``address`` (always ``127.0.0.1:<port>``) and returns it; the
   harness later awaits ``stop(grace)`` on it. A `grpc.aio.Server` fits as it is.
2. ``connect(address)`` runs in the load process and opens the one client
   connection every call shares (for gRPC: `benchmarks.transports.grpc_channel`).
3. ``setup(connection)`` (optional) runs once before the warm-up, for work a
   call needs but must not be timed: create a user, sign in, create a graph.
   It returns a few named strings (a token, an id) handed to the call builder.
4. ``call(connection, setup_result)`` binds one call; the load generator awaits
   the returned coroutine function with ``concurrency`` calls in flight. A call
   fails by raising: `grpc.aio.AioRpcError` counts under its status code name,
   `CallFailed` under its ``status``, anything else under its exception name.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "Call",
    "CallBuilder",
    "CallFailed",
    "Case",
    "Connect",
    "RunningServer",
    "ServerFactory",
    "Setup",
    "SetupResult",
    "import_path",
    "load_function",
]

ConnT = TypeVar("ConnT")
"""The client connection type of a case (`grpc.aio.Channel` for gRPC cases)."""


class RunningServer(Protocol):
    """A started server the harness can stop (`grpc.aio.Server` qualifies)."""

    async def stop(self, grace: float | None) -> None:
        """Stops serving; in-flight calls get ``grace`` seconds to finish."""
        ...


ServerFactory = Callable[[str], Awaitable[RunningServer]]
"""Builds and starts the server under test on the given address, returns it."""

SetupResult = Mapping[str, str]
"""Named strings a setup hands to the call builder (a token, a graph id)."""

Call = Callable[[], Awaitable[object]]
"""One call to measure; raises to report a status other than OK."""

Connect = Callable[[str], AbstractAsyncContextManager[ConnT]]
"""Opens the client connection all in-flight calls share, given the address."""

Setup = Callable[[ConnT], Awaitable[SetupResult]]
"""Untimed preparation, run once in the load process before the warm-up."""

CallBuilder = Callable[[ConnT, SetupResult], Call]
"""Binds the call to the connection and the setup result."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class CallFailed(Exception):
    """Raised by a non-gRPC call (HTTP, say) to report a status other than OK.

    ``status`` is the label the report counts it under, e.g. ``"HTTP_503"``;
    keep it to a small fixed set so the status table stays short.
    """

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class Case(Generic[ConnT]):
    """One benchmark: a server factory, a client connection and a call.

    Every function must be defined at module level (see the module docstring):
    the constructor checks this so a mistake fails at import, not in a child
    process half-way through a run.
    """

    name: str
    """Short identifier used on the command line and in reports (``[a-z0-9_]``)."""
    summary: str
    """One line saying what the case measures."""
    server: ServerFactory
    connect: Connect[ConnT]
    call: CallBuilder[ConnT]
    setup: Setup[ConnT] | None = None
    start_timeout: float = 30.0
    """Seconds the server process may take to come up (embedded stores are slow)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"case name {self.name!r} must match {_NAME.pattern}")
        for function in (self.server, self.connect, self.call, self.setup):
            if function is not None:
                import_path(function)  # raises if a child process could not import it


def import_path(function: Callable[..., object]) -> str:
    """Returns ``"module:qualname"`` for a module-level function.

    Raises `ValueError` for lambdas, closures and methods: a spawned process
    could not import them by name.
    """
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or "<" in qualname or "." in qualname:
        raise ValueError(f"{function!r} is not a module-level function")
    if module == "__main__":
        raise ValueError(f"{function!r} lives in __main__, which a child cannot import")
    return f"{module}:{qualname}"


def load_function(path: str) -> Callable[..., Any]:
    """Imports the function named by an `import_path` result.

    Raises `ValueError` if the path is malformed or names something that is
    not callable, `ImportError`/`AttributeError` if it does not exist.
    """
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'module:function', got {path!r}")
    function: object = getattr(importlib.import_module(module_name), attribute)
    if not callable(function):
        raise ValueError(f"{path} is not callable")
    return function
