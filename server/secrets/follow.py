"""Open store clients follow rotated credentials without a restart (C12, C13).

A rotation leaves the credentials in use valid until the rotation after
next, so open connections never break; but the pools must open their *new*
connections with the current credentials before the old ones are retired.

* PostgreSQL: ``Pool.set_connect_args`` with the new URL.
* Valkey: connections ask a :class:`ValkeyCredentials` for user and password
  each time they (re)connect, so the client is built from the URL *without*
  credentials plus this provider (:func:`valkey_url_and_credentials`), and
  the follower swaps what it returns.

:func:`store_credentials_follower` is the :meth:`SecretsProvider.on_change`
callback that does both.

Security: only user name and password follow on the fly. A changed host,
port, database or scheme is logged as needing a restart rather than applied
half-way, so a secret cannot silently point a running service elsewhere.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
from valkey.credentials import CredentialProvider

from graphgate.server.secrets.provider import ChangeCallback
from graphgate.server.settings import Settings
from graphgate.server.tls import postgres_ssl_context

_log = logging.getLogger("graphgate.secrets")


class ValkeyCredentials(CredentialProvider):
    """The user name and password of the current ``VALKEY_URL``, swapped on rotation."""

    def __init__(self, url: str) -> None:
        self._credentials: tuple[str] | tuple[str, str] = ("",)
        self.update(url)

    def update(self, url: str) -> None:
        """Use the credentials in ``url`` from the next (re)connection on."""
        parts = urlsplit(url)
        password = unquote(parts.password or "")
        # One assignment: a connecting thread sees the old pair or the new one.
        self._credentials = (unquote(parts.username), password) if parts.username else (password,)

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        """What valkey-py sends with AUTH."""
        return self._credentials


def valkey_url_and_credentials(url: str) -> tuple[str, ValkeyCredentials]:
    """``url`` without its user and password, and a provider holding them.

    valkey-py refuses a URL with credentials *and* a credential provider.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, ValkeyCredentials(url)


def _endpoint(url: str) -> tuple[str, str | None, int | None, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port, parts.path


def store_credentials_follower(
    *,
    postgres: asyncpg.Pool | None,
    valkey: ValkeyCredentials | None,
    started: Settings,
) -> ChangeCallback:
    """A :meth:`SecretsProvider.on_change` callback for the open pools.

    ``started`` is the settings the pools were opened with.
    """
    origin = {"DATABASE_URL": started.database_url, "VALKEY_URL": started.valkey_url}

    def moved(name: str, url: str) -> bool:
        before = origin[name]
        if before is not None and _endpoint(before) != _endpoint(url):
            _log.warning("%s now names another server: restart to use it", name)
            return True
        return False

    def follow(settings: Settings, changed: frozenset[str]) -> None:
        url = settings.database_url
        if (
            postgres is not None
            and "DATABASE_URL" in changed
            and url
            and not moved("DATABASE_URL", url)
        ):
            # New connections use it; open ones stay valid until the next rotation.
            postgres.set_connect_args(url, ssl=postgres_ssl_context(settings))
        url = settings.valkey_url
        if valkey is not None and "VALKEY_URL" in changed and url and not moved("VALKEY_URL", url):
            valkey.update(url)

    return follow
