"""Process plumbing shared by the server and load-generator processes.

Both children are started with the *spawn* method: a fresh interpreter that
shares nothing with the harness (no GIL, no gRPC state; forking a process that
has imported grpc is unsafe), and a clean child that imports only what its
case names.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import psutil

__all__ = [
    "SPAWN",
    "ChildError",
    "ChildFailed",
    "cpu_seconds_between",
    "ignore_sigint",
    "receive",
    "stop_process",
    "tree_cpu_seconds",
]

SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class ChildFailed:
    """Sent up the pipe instead of a result when a child process fails."""

    role: str
    traceback: str


class ChildError(RuntimeError):
    """Raised in the harness when a child reported a failure or died."""


def ignore_sigint() -> None:
    """Leaves Ctrl-C to the harness.

    Ctrl-C signals the whole foreground process group. The harness stops its
    children in order (server gracefully, then terminate, then kill); a child
    that also reacted would only print a second traceback mid-shutdown.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def tree_cpu_seconds(root: psutil.Process) -> dict[int, float]:
    """User + system CPU seconds of ``root`` and each live descendant, by pid.

    Descendants count because later servers run work in child processes
    (graph workers, embedded stores). A process that exits inside the measured
    window takes its CPU with it: keep workers alive across a measurement.
    """
    times: dict[int, float] = {}
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            cpu = process.cpu_times()
            times[process.pid] = cpu.user + cpu.system
    return times


def cpu_seconds_between(start: dict[int, float], end: dict[int, float]) -> float:
    """CPU spent between two `tree_cpu_seconds` samples (new processes count whole)."""
    return sum(seconds - start.get(pid, 0.0) for pid, seconds in end.items())


def stop_process(process: BaseProcess, *, grace: float) -> None:
    """Waits ``grace`` seconds for ``process`` to exit, then terminates, then kills it.

    Descendants are looked up first and stopped after it, because once the
    process is gone they are re-parented and no longer findable from it.
    """
    descendants: list[psutil.Process] = []
    if process.pid is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            descendants = psutil.Process(process.pid).children(recursive=True)
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)
    for descendant in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            descendant.terminate()
    _, alive = psutil.wait_procs(descendants, timeout=2.0)
    for descendant in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            descendant.kill()


def receive(conn: Connection, process: BaseProcess, *, timeout: float, role: str) -> object:
    """The next message from a child, or `ChildError` if it failed, died or is silent.

    Waits at most ``timeout`` seconds; a child's failure arrives as
    `ChildFailed` and is raised here with the child's traceback.
    """
    if not conn.poll(timeout):
        raise ChildError(f"{role} process sent nothing within {timeout:g} s")
    try:
        message = conn.recv()
    except EOFError:
        process.join(1.0)
        raise ChildError(f"{role} process exited (exit code {process.exitcode})") from None
    if isinstance(message, ChildFailed):
        raise ChildError(f"{message.role} process failed:\n{message.traceback}")
    return message
