"""Client settings from the environment and a config file (the ``graphgate`` command).

Sources, first match wins:

- the URL: an explicit value (``--url``), ``GRAPHGATE_URL``, ``url`` in the
  config file, else ``grpc://127.0.0.1:50051``;
- credentials: ``GRAPHGATE_API_KEY``, ``api_key`` in the config file, else the
  session ``graphgate login`` saved (``[session]`` in the config file).

The config file is ``$XDG_CONFIG_HOME/graphgate/config.toml`` (by default
``~/.config/graphgate/config.toml``), or the path given with ``--config``::

    url = "grpc://127.0.0.1:50051"
    api_key = "gg_..."

    [session]
    email = "ada@example.com"
    access_token = "eyJ..."

Security: the file holds credentials, so it must belong to the current user
and be readable by nobody else: a file with any group or other permission
bit is refused, not read. It is written atomically with mode 0600 in a
directory of mode 0700.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphgate.clients.errors import ConfigError
from graphgate.clients.target import DEFAULT_URL

#: Environment names the client reads (never the server's settings names).
ENV_URL = "GRAPHGATE_URL"
ENV_API_KEY = "GRAPHGATE_API_KEY"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/graphgate/config.toml``, else ``~/.config/graphgate/config.toml``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "graphgate" / "config.toml"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where to connect and with which credentials."""

    url: str = DEFAULT_URL
    api_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    email: str | None = None
    config_path: Path | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Client``/``AsyncClient`` (an API key wins)."""
        if self.api_key:
            return {"api_key": self.api_key}
        if self.token:
            return {"token": self.token}
        return {}


def _check_safe(path: Path, info: os.stat_result) -> None:
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{path} belongs to another user; refusing to read credentials from it",
            reason="CONFIG_UNSAFE",
        )
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(
            f"{path} is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}",
            reason="CONFIG_UNSAFE",
        )


def read_config(path: Path) -> dict[str, Any]:
    """The config file's content ({} when it does not exist).

    Raises :class:`~graphgate.clients.ConfigError` for an unsafe or broken file.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", reason="CONFIG_UNREADABLE"
        ) from exc
    with os.fdopen(descriptor, "rb") as handle:
        # Checked on the open file, so the file cannot be swapped after the check.
        _check_safe(path, os.fstat(handle.fileno()))
        try:
            return tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}", reason="CONFIG_INVALID") from exc


def _toml(data: Mapping[str, Any]) -> str:
    # Only strings and one level of tables are ever written; JSON string
    # escapes are valid TOML basic-string escapes.
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if isinstance(v, str)]
    for name, table in data.items():
        if isinstance(table, Mapping) and table:
            lines += ["", f"[{name}]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if isinstance(v, str)]
    return "\n".join(lines) + "\n"


def write_config(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, in a 0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(_toml(data))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def update_config(path: Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the config file (a value of None removes the key)."""
    data = read_config(path)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    write_config(path, data)
    return data


def load_client_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_path: Path | None = None,
    url: str | None = None,
) -> ClientSettings:
    """Client settings from an explicit ``url``, the environment and the config file."""
    env = os.environ if environ is None else environ
    path = config_path or default_config_path(env)
    data = read_config(path)
    raw_session = data.get("session")
    session: dict[str, Any] = raw_session if isinstance(raw_session, dict) else {}
    return ClientSettings(
        url=url or env.get(ENV_URL) or _str(data.get("url")) or DEFAULT_URL,
        api_key=env.get(ENV_API_KEY) or _str(data.get("api_key")),
        token=_str(session.get("access_token")),
        email=_str(session.get("email")),
        config_path=path,
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
