"""Child processes of the embedded servers: spawned to die with us, waited for, stopped."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from graphgate.server.embedded._common import EmbeddedStoreError

#: ``prctl`` option from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1

#: A readiness probe returns None once the server answers, else why it does not yet.
Probe = Callable[[], str | None]


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when we die, however we die."""
    if not sys.platform.startswith("linux"):
        return None  # elsewhere only stop() and normal interpreter exit clean up
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # Had we died between fork and prctl, the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def spawn(
    argv: Sequence[str], *, log: Path, cwd: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log``.

    The child gets exactly ``env`` (nothing inherited: no stray ``AWS_*`` or
    ``S3_*`` setting can change its behaviour), its own session (a Ctrl-C in
    the terminal reaches graphgate, which then stops its servers in order),
    and, on Linux, a parent-death signal. That signal is tied to the *thread*
    that spawns: call from a thread that lives as long as the servers.
    """
    if log.exists():
        # Keep the previous run's log: it explains why that run ended.
        log.replace(log.with_name(log.name + ".1"))
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - argv is built by us, never from user text
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )


def stop(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM ``process`` (servers flush on it), SIGKILL after ``timeout`` s, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def last_line(log: Path, significant: str = "", start: int = 0) -> str:
    """The last line of ``log`` (from byte ``start``) matching ``significant``, else its last.

    Servers often log a few notices after the line that explains their exit
    (valkey dumps an RDB check): the regex ``significant`` picks the explanation.
    """
    try:
        with log.open("rb") as handle:
            handle.seek(max(start, log.stat().st_size - 16384))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return f"no log at {log}"
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines:
        return f"nothing written to {log}"
    chosen = [line for line in lines if significant and re.search(significant, line)]
    return (chosen or lines)[-1]


def port_in_use(log: Path, ports: Sequence[int]) -> int | None:
    """The port among ``ports`` that ``log`` says could not be bound, if any."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return None
    for line in text.splitlines():
        if "already in use" in line:
            for port in ports:
                if re.search(rf"\b{port}\b", line):
                    return port
    return None


def start_failure(
    part: str, log: Path, ports: Sequence[int], cause: str, significant: str = ""
) -> EmbeddedStoreError:
    """The one-line error for a server that did not come up."""
    busy = port_in_use(log, ports)
    if busy is not None:
        return EmbeddedStoreError(f"embedded {part} failed to start: port {busy} in use")
    return EmbeddedStoreError(
        f"embedded {part} failed to start: {cause}; log: {last_line(log, significant)}"
    )


def wait_ready(
    part: str,
    process: subprocess.Popen[bytes] | None,
    probe: Probe,
    *,
    log: Path,
    ports: Sequence[int],
    timeout: float,
    significant: str = "",
) -> None:
    """Poll ``probe`` until the server answers; fail fast if ``process`` exits first.

    ``significant`` is a regex for the log lines worth quoting in the error.

    Raises:
        EmbeddedStoreError: the process exited, or did not answer in ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        code = None if process is None else process.poll()
        if code is not None:
            raise start_failure(part, log, ports, f"exited with code {code}", significant)
        reason = probe()
        # A probe can be answered by a stranger on our port while our server dies.
        if reason is None and (process is None or process.poll() is None):
            return
        if time.monotonic() > deadline:
            cause = f"no answer within {timeout:g} s ({reason})"
            raise start_failure(part, log, ports, cause, significant)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def remove_stale_sockets(paths: Iterable[Path]) -> None:
    """Delete Unix socket files a killed server left behind (never other files)."""
    for path in paths:
        with contextlib.suppress(OSError):
            info = path.lstat()
            if path.is_socket() and info.st_uid == os.geteuid():
                path.unlink()
