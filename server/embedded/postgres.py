"""Embedded PostgreSQL 16 through ``pgserver`` (a real PostgreSQL in a wheel).

pgserver decides a few things we document rather than fight:

* Run as root, it starts postgres as the OS user ``pgserver`` (``useradd`` if
  missing), gives it PGDATA and makes every *parent* of PGDATA traversable
  and readable by all users (o+rx). That is why PGDATA is a directory of its
  own, ``<data_dir>/embedded/postgres``, and why the sibling directories we
  create are 0700.
* It listens on a Unix socket only, inside PGDATA (mode 0700), with ``trust``
  authentication: the directory permissions are the access control.
* It keeps an inter-process lock file in the user runtime directory
  (``$XDG_RUNTIME_DIR`` or ``/tmp/runtime-<uid>``).
* postgres daemonises, so it cannot die with us: :meth:`EmbeddedPostgres.stop`
  shuts it down, and a postgres orphaned by a crash is adopted by the next
  start on the same data directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psutil

from graphgate.server.embedded import _process
from graphgate.server.embedded._common import MAX_SOCKET_PATH, EmbeddedStoreError, logger

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

_SOCKET_NAME = ".s.PGSQL.5432"
_ERROR_LINE = r"\b(ERROR|FATAL|PANIC):"
_TIMEOUT = 10.0
#: Starts tried when running as root (see EmbeddedPostgres._launch for why).
_ROOT_ATTEMPTS = 3


def _describe(exc: BaseException) -> str:
    """A short cause for ``exc`` (pgserver's own messages quote whole command lines)."""
    # After a failed pg_ctl pgserver reads the log to report it; when there is
    # no log that read fails instead, and the pg_ctl failure is the context.
    if isinstance(exc, OSError) and isinstance(exc.__context__, subprocess.SubprocessError):
        exc = exc.__context__
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{Path(str(exc.cmd[0])).name} exited with code {exc.returncode}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"{Path(str(exc.cmd[0])).name} timed out after {exc.timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


class EmbeddedPostgres:
    """PostgreSQL with PGDATA in ``directory``, reached through a Unix socket there."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._server: PostgresServer | None = None
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        """An asyncpg/libpq DSN: ``postgresql://postgres@/postgres?host=<socket dir>``."""
        if self._dsn is None:
            raise EmbeddedStoreError("embedded postgres is not started")
        return self._dsn

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._server.get_pid() if self._server is not None else None

    def start(self) -> None:
        """Initialise PGDATA on first use, start postgres, wait until it accepts connections.

        Raises:
            EmbeddedStoreError: pgserver missing, path too long, or postgres did not start.
        """
        if self._server is not None:
            return
        began = time.monotonic()
        socket_path = self._dir / _SOCKET_NAME
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            # pgserver would fall back to a world-writable socket directory,
            # which with trust authentication opens the database to every user.
            raise EmbeddedStoreError(
                f"embedded postgres: data directory path too long for a Unix socket "
                f"({socket_path}, max {MAX_SOCKET_PATH} bytes): choose a shorter data dir"
            )
        self._dir.mkdir(exist_ok=True)
        self._server = self._launch(_server_class())
        # The length check above keeps pgserver's socket in PGDATA.
        self._dsn = f"postgresql://postgres@/postgres?host={quote(str(self._dir))}"
        _process.wait_ready(
            "postgres",
            None,
            lambda: _pg_isready(self._dir),
            log=self._dir / "log",
            ports=[],
            timeout=_TIMEOUT,
            significant=_ERROR_LINE,
        )
        version = (self._dir / "PG_VERSION").read_text().strip()
        logger.info(
            "embedded postgres %s ready in %.2f s (data in %s, Unix socket only)",
            version,
            time.monotonic() - began,
            self._dir,
        )

    def _launch(self, server_class: type[PostgresServer]) -> PostgresServer:
        fresh = not (self._dir / "PG_VERSION").exists()
        attempts = _ROOT_ATTEMPTS if _system_user() else 1
        for attempt in range(1, attempts + 1):
            # pgserver stops postgres only when the last process in this list
            # lets go; a crashed run stays listed forever. graphgate owns its
            # data directory alone, so earlier holders are forgotten.
            handles = self._dir / ".handle_pids.json"
            if handles.exists():
                handles.write_text("[]")
            log = self._dir / "log"
            logged = log.stat().st_size if log.exists() else 0
            try:
                return server_class(self._dir, cleanup_mode="stop")
            except Exception as exc:
                self._stop_postmaster()
                if attempt == attempts:
                    raise self._failure(exc, logged) from exc
                # As root, pgserver opens PGDATA's parents to its postgres user
                # before initdb and pg_ctl; whatever tightens them meanwhile
                # (pytest re-chmods /tmp/pytest-of-<user> to 0700 whenever a
                # session starts) fails that attempt. A half-made new cluster
                # holds no data and would confuse pgserver: start it afresh.
                logger.warning("embedded postgres: start failed, retrying: %s", _describe(exc))
                if fresh:
                    _empty(self._dir)
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, exc: BaseException, logged: int) -> EmbeddedStoreError:
        """The error for a failed start; ``logged`` is the log's size before it."""
        cause = _describe(exc)
        blocked = _blocked_parent(self._dir)
        if blocked is not None:
            cause += f" ({blocked} is closed to the pgserver user)"
        log = _process.last_line(self._dir / "log", _ERROR_LINE, start=logged)
        return EmbeddedStoreError(f"embedded postgres failed to start: {cause}; log: {log}")

    def stop(self) -> None:
        """Shut postgres down (fast mode: open sessions are ended). Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            try:
                server.cleanup()
            except Exception as exc:
                logger.warning("embedded postgres: pgserver cleanup failed: %s", _describe(exc))
        self._stop_postmaster()

    def _stop_postmaster(self) -> None:
        """Make sure no postmaster of this PGDATA runs, whatever pgserver did."""
        process = _postmaster(self._dir)
        if process is None:
            return
        _pg_ctl_stop(self._dir)
        try:
            process.wait(_TIMEOUT)
        except psutil.TimeoutExpired:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _server_class() -> type[PostgresServer]:
    """pgserver's server class, imported on first use (production may lack pgserver)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
            from pgserver.postgres_server import PostgresServer
    except ImportError as exc:
        raise EmbeddedStoreError(f"embedded postgres: pgserver is not installed ({exc})") from exc
    _quieten_pgserver_logging()
    return PostgresServer


def _quieten_pgserver_logging() -> None:
    # pgserver logs each command it runs at INFO and, on failure, the whole
    # postgres log at ERROR; our one-line error quotes the line that matters
    # and the full log stays in PGDATA/log. An operator's own setting wins.
    pg_logger = logging.getLogger("pgserver")
    if pg_logger.level == logging.NOTSET:
        pg_logger.setLevel(logging.CRITICAL)


def _postmaster(pgdata: Path) -> psutil.Process | None:
    """The running postmaster named in ``postmaster.pid``, if any."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        # A stale pid file can name a pid since reused by something else.
        running = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        return process if running and process.name() == "postgres" else None
    except (OSError, ValueError, psutil.Error):
        return None


def _empty(directory: Path) -> None:
    """Delete everything inside ``directory`` (pgserver owns the directory itself)."""
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _blocked_parent(pgdata: Path) -> Path | None:
    """The outermost parent of PGDATA that pgserver's postgres user cannot enter."""
    if _system_user() is None:
        return None
    for parent in reversed(pgdata.parents):
        with contextlib.suppress(OSError):
            if not parent.stat().st_mode & stat.S_IXOTH:
                return parent
    return None


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    """The OS user pgserver runs postgres as (postgres refuses to run as root)."""
    return "pgserver" if os.geteuid() == 0 else None


def _pg_isready(socket_dir: Path) -> str | None:
    result = subprocess.run(  # noqa: S603 - fixed argv
        # As postgres: probing as the OS user logs 'FATAL: role "root" does not exist'.
        [_bin("pg_isready"), "-q", "-h", str(socket_dir), "-U", "postgres", "-t", "1"],
        check=False,
        capture_output=True,
    )
    return None if result.returncode == 0 else f"pg_isready exited with {result.returncode}"


def _pg_ctl_stop(pgdata: Path) -> None:
    # A hung pg_ctl is no reason to give up: the caller kills the postmaster.
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(  # noqa: S603 - fixed argv
            [_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            user=_system_user(),
            timeout=_TIMEOUT,
        )
