"""Rotation of the PostgreSQL password with alternating users (C13).

PostgreSQL gives a role one password, so changing the password of the role
in use would break every replica that still caches the old URL (up to the
TTL) the moment it opens a new connection. The database secret therefore
names two equivalent login roles (same group role, same privileges)::

    {"DATABASE_URL": "postgresql://graphgate_a:...@db/graphgate?sslmode=verify-full",
     "_DATABASE_ALTERNATE_URL": "postgresql://graphgate_b:...@db/graphgate?sslmode=verify-full"}

Each rotation gives the *other* role a new password and makes it current;
the role in use keeps its password until the rotation after next (a month
later), so both the old and the new URL work throughout.

* create: ``DATABASE_URL`` = the alternate role with a new random password,
  ``_DATABASE_ALTERNATE_URL`` = the current URL.
* set: connect *as the alternate role* with its last password and change
  its own password (``ALTER ROLE CURRENT_USER``: no admin rights needed), sent
  as a SCRAM verifier so the password never reaches a server log. A retry
  after a half-done set finds the new password already working and stops.
* test: a new connection with the pending URL, over the deployment's TLS
  settings, must log in as the expected role and run a query.

Security: storing both roles' credentials in one secret gives the service
nothing it did not have (the roles are equivalent). Objects must belong to
the shared group role (run migrations with ``SET ROLE``), so either login
role can use them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from graphgate.server.secrets import scram
from graphgate.server.secrets.client import Document
from graphgate.server.secrets.steps import RotationContext, RotationError
from graphgate.server.tls import postgres_ssl_context

ALTERNATE = "_DATABASE_ALTERNATE_URL"
_TIMEOUT = 10.0


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced (user, host and options kept)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("a rotatable URL names a host")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    user = quote(unquote(parts.username or ""), safe="")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def user_of(url: str) -> str:
    """The (unquoted) user name in ``url``."""
    return unquote(urlsplit(url).username or "")


def password_of(url: str) -> str:
    """The (unquoted) password in ``url``."""
    return unquote(urlsplit(url).password or "")


async def connect(url: str, context: RotationContext) -> asyncpg.Connection:
    """A new connection to ``url`` with the deployment's TLS settings."""
    ssl = postgres_ssl_context(context.with_settings(database_url=url))
    connection: asyncpg.Connection = await asyncpg.connect(url, ssl=ssl, timeout=_TIMEOUT)
    return connection


def _urls(document: Document, secret_id: str) -> tuple[str, str]:
    current, alternate = document.get("DATABASE_URL"), document.get(ALTERNATE)
    if not isinstance(current, str) or not isinstance(alternate, str):
        raise RotationError(
            f"secret {secret_id}: needs DATABASE_URL and {ALTERNATE} (two login roles)"
            " for rotation without downtime"
        )
    if user_of(current) == user_of(alternate):
        raise RotationError(f"secret {secret_id}: the two URLs must name different roles")
    return current, alternate


@dataclass(frozen=True, slots=True)
class PostgresRotator:
    """Alternating-users rotation of ``DATABASE_URL``."""

    invalidates_previous: bool = True

    def create(self, current: Document, context: RotationContext) -> Document:
        """The alternate role, with a fresh password, becomes the pending URL."""
        active, alternate = _urls(current, context.secret_id)
        fresh = with_password(alternate, secrets.token_urlsafe(32))
        return {**current, "DATABASE_URL": fresh, ALTERNATE: active}

    async def apply(
        self, current: Document, pending: Document, context: RotationContext
    ) -> list[str]:
        """The alternate role sets its own new password."""
        _, old_alternate = _urls(current, context.secret_id)
        new_url = pending["DATABASE_URL"]
        try:
            probe = await connect(new_url, context)
        except asyncpg.InvalidPasswordError:
            pass
        else:  # a retried setSecret: already applied
            await probe.close()
            return [f"{user_of(new_url)}: new password was already set"]
        try:
            connection = await connect(old_alternate, context)
        except asyncpg.InvalidPasswordError as exc:
            raise RotationError(
                f"secret {context.secret_id}: role {user_of(old_alternate)} refuses its last"
                " password; reset it by hand (docs/operations/secrets.md)"
            ) from exc
        try:
            literal = scram.verifier(password_of(new_url))
            # A verifier is base64, '$' and ':' only: safe as a literal.
            await connection.execute(f"ALTER ROLE CURRENT_USER PASSWORD '{literal}'")
        finally:
            await connection.close()
        return [
            f"{user_of(new_url)}: password changed; {user_of(current['DATABASE_URL'])}"
            " keeps its password until the next rotation"
        ]

    async def verify(self, pending: Document, context: RotationContext) -> None:
        """A fresh connection with the pending URL logs in as its role."""
        url = pending["DATABASE_URL"]
        try:
            connection = await connect(url, context)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RotationError(
                f"secret {context.secret_id}: pending URL cannot connect ({type(exc).__name__})"
            ) from exc
        try:
            who = await connection.fetchval("SELECT current_user")
        finally:
            await connection.close()
        if who != user_of(url):
            raise RotationError(
                f"secret {context.secret_id}: logged in as {who}, not {user_of(url)}"
            )


POSTGRES = PostgresRotator()
