"""Engine work off the event loop, stoppable by deadline or cancellation.

Engine calls block and hold no GIL while they run, so a worker runs them on a
bounded thread pool and awaits them. Stopping one is the engine's business:
:meth:`Interruptible.interrupt` calls ``Connection.interrupt()``, repeated
every 50 ms until the call returns, because an interrupt that arrives while
a statement is still compiling is cleared when execution starts. Some engine
phases never look at the flag (building a huge ``range()`` list): the caller
gets its answer at the deadline anyway, and the thread finishes later.

Resources a call holds (the graph's write lock, its open database) must
outlive the *thread*, not the awaiting coroutine: :meth:`EngineRunner.submit`
returns the executor future so callers release them in its done-callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from graphgate.server.engine.failures import timed_out

T = TypeVar("T")

_log = logging.getLogger(__name__)

#: How often an interrupt is repeated until the engine call returns.
INTERRUPT_INTERVAL_SECONDS = 0.05
#: How long a timed-out call may take to stop before the caller is answered anyway.
STOP_GRACE_SECONDS = 0.5


class Interruptible(Protocol):
    """Something that can stop the engine call it is running."""

    def interrupt(self) -> None:
        """Ask the engine to stop; safe from any thread, at any time, repeatedly."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A call abandoned at its deadline may fail later with nobody awaiting it;
    # reading the exception here keeps asyncio from reporting it as lost.
    if not future.cancelled():
        future.exception()


class EngineRunner:
    """A bounded thread pool for engine calls, with deadline and cancellation handling."""

    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="engine")
        self._background: set[asyncio.Task[None]] = set()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Start ``fn`` on the pool; the future completes when the thread is done."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn)
        future.add_done_callback(_retrieve)
        return future

    async def wait(self, future: asyncio.Future[T], target: Interruptible, deadline: float) -> T:
        """Await ``future`` until ``deadline`` (loop time).

        At the deadline ``target`` is interrupted and :class:`DeadlineExceeded`
        raised (after at most :data:`STOP_GRACE_SECONDS` waiting for the engine
        to stop). When the awaiting task is cancelled, ``target`` is
        interrupted in the background and the cancellation propagates.
        Exceptions of ``fn`` propagate unchanged.
        """
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            # asyncio.wait never cancels the future it watches: the thread runs on
            # until the interrupt lands, and its resources are released after it.
            done, _ = await asyncio.wait({future}, timeout=remaining)
        except asyncio.CancelledError:
            self.stop(future, target)
            raise
        if not done:
            self.stop(future, target)
            await asyncio.wait({future}, timeout=STOP_GRACE_SECONDS)
            raise timed_out()
        return future.result()

    def stop(self, future: asyncio.Future[Any], target: Interruptible) -> None:
        """Interrupt ``target`` until ``future`` is done, in the background."""
        if not future.done():
            self.spawn(self._interrupt_until_done(future, target))

    def spawn(self, work: Coroutine[object, object, None]) -> None:
        """Run ``work`` in the background; :meth:`close` waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _interrupt_until_done(future: asyncio.Future[Any], target: Interruptible) -> None:
        while not future.done():
            try:
                target.interrupt()
            except Exception:  # the connection may be closing under us; keep trying
                _log.debug("interrupt failed", exc_info=True)
            await asyncio.wait({future}, timeout=INTERRUPT_INTERVAL_SECONDS)

    async def close(self) -> None:
        """Wait for running calls (interrupted by now) and stop the pool."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
