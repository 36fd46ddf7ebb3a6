"""Peak resident memory of processes while something runs (the long-call scripts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil

__all__ = ["PeakSampler"]


class PeakSampler:
    """Samples the RSS of some processes every 10 ms in a thread; keeps each one's peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, process in self._processes.items():
                with suppress(psutil.Error):  # it may be restarting
                    self.peaks[name] = max(self.peaks[name], process.memory_info().rss)
            self._stop.wait(0.01)

    @contextmanager
    def running(self) -> Iterator[PeakSampler]:
        """Sample while the block runs."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
