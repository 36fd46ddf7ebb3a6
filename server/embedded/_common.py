"""What the embedded servers share: the error, the logger, private files and ports."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

#: The one logger of the embedded servers.
logger = logging.getLogger("graphgate.embedded")

LOOPBACK = "127.0.0.1"

#: Longest path a Unix socket may have on Linux (``sun_path`` is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107

_HIGHEST_PORT = 65535


class EmbeddedStoreError(Exception):
    """An embedded server could not be prepared, started or stopped.

    ``str()`` is always one line naming the part and the cause, e.g.
    ``embedded valkey failed to start: port 6390 in use``.
    """

    def __init__(self, message: str) -> None:
        # Causes often quote multi-line output (logs, tracebacks): an operator
        # reads the first line of an error, so it must carry everything.
        super().__init__(" ".join(message.split()))


def ensure_writable_dir(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be written in it.

    Raises:
        EmbeddedStoreError: the path is not a directory or is not writable.
    """
    if directory.exists() and not directory.is_dir():
        raise EmbeddedStoreError(f"embedded stores: data directory {directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Permission bits alone say nothing for root or on read-only mounts: try it.
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise EmbeddedStoreError(
            f"embedded stores: data directory {directory} is not writable ({exc.strerror or exc})"
        ) from exc


def private_dir(directory: Path) -> Path:
    """Create ``directory`` readable by its owner only and return it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (it may hold secrets)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def token(length: int = 32) -> str:
    """A random URL-safe secret of ``length`` characters."""
    return secrets.token_urlsafe(length)[:length]


def load_secrets(path: Path, makers: Mapping[str, Callable[[], str]]) -> dict[str, str]:
    """Read the secrets kept in ``path``, generating and saving any missing one.

    The file is (re)written with mode 0600, so credentials survive restarts
    without ever being readable by other local users.
    """
    stored: dict[str, str] = {}
    if path.exists():
        loaded = json.loads(path.read_text(encoding="utf-8"))
        stored = {str(k): str(v) for k, v in loaded.items()}
    missing = {name: make() for name, make in makers.items() if name not in stored}
    if missing or not path.exists() or path.stat().st_mode & 0o077:
        stored.update(missing)
        write_private(path, json.dumps(stored, indent=2) + "\n")
    return stored


def port_is_free(port: int) -> bool:
    """True when a server could listen on ``127.0.0.1:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR, so a port held only by TIME_WAIT leftovers
        # of the previous run is free for them: probe the same way.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


class PortBook:
    """Loopback ports remembered in a JSON file so that restarts keep their URLs.

    ``offset`` asks for a second free port at ``port + offset`` (SeaweedFS puts
    each gRPC port 10000 above its HTTP port and its admin worker assumes it).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ports: dict[str, int] = {}
        if path.exists():
            self._ports = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
        self._claimed: set[int] = set()

    def claim(self, name: str, *, offset: int = 0) -> int:
        """The remembered port for ``name`` if it is still free, else a new free one."""
        port = self._ports.get(name)
        if port is None or not self._usable(port, offset):
            port = self._pick(offset)
            self._ports[name] = port
            self._path.write_text(json.dumps(self._ports, indent=2, sort_keys=True) + "\n")
        self._claimed.update({port, port + offset})
        return port

    def _usable(self, port: int, offset: int) -> bool:
        pair = {port, port + offset}
        return (
            port + offset <= _HIGHEST_PORT
            and not pair & self._claimed
            and all(port_is_free(p) for p in pair)
        )

    def _pick(self, offset: int) -> int:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((LOOPBACK, 0))
                port = int(probe.getsockname()[1])
            if self._usable(port, offset):
                return port
        raise EmbeddedStoreError("embedded stores: no free loopback port found")
