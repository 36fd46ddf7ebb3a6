"""Rotation of the Valkey password with two valid passwords at a time (C13).

A Valkey ACL user may hold several passwords. The set step leaves the user
with exactly two: the one in AWSCURRENT (replicas still use it) and the new
one. The password before those (AWSPREVIOUS) stops working then, which the
rotation guard allows only once no replica can still cache it.

* create: ``VALKEY_URL`` with a new random password (same user and host).
* set: ``ACL SETUSER <user> resetpass #<sha256 current> #<sha256 new>`` as
  the admin (secret ``graphgate/{env}/valkey-admin``, key
  ``VALKEY_ADMIN_URL``; without it, the service's own user, which then needs
  the ACL commands). Passwords travel as SHA-256 hashes, as Valkey stores
  them. ``ACL SAVE`` persists the change when Valkey has an ACL file.
* test: a new connection with the pending URL (TLS settings applied)
  answers PING as the expected user.

Security: the admin credential lives in its own secret, which the service
never reads. Without an ACL file the change lives in memory only: a Valkey
restart would bring back the configured password (reported as a note).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import valkey.asyncio as valkey_asyncio
import valkey.exceptions

from graphgate.server.secrets.client import Document, SecretNotFound, read_document
from graphgate.server.secrets.rotate_postgres import password_of, user_of, with_password
from graphgate.server.secrets.steps import RotationContext, RotationError
from graphgate.server.tls import valkey_tls_kwargs

ADMIN_SUFFIX = "-admin"
_TIMEOUT = 5.0


def client_for(url: str, context: RotationContext) -> valkey_asyncio.Valkey:
    """A Valkey client for ``url`` with the deployment's TLS settings."""
    kwargs: dict[str, Any] = valkey_tls_kwargs(context.with_settings(valkey_url=url))
    client: valkey_asyncio.Valkey = valkey_asyncio.Valkey.from_url(
        url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT, **kwargs
    )
    return client


def _url(document: Document, secret_id: str) -> str:
    url = document.get("VALKEY_URL")
    if not isinstance(url, str) or not password_of(url):
        raise RotationError(f"secret {secret_id}: needs a VALKEY_URL with a password")
    return url


def _digest(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ValkeyRotator:
    """Rotates the password of the ACL user in ``VALKEY_URL``."""

    invalidates_previous: bool = True

    def create(self, current: Document, context: RotationContext) -> Document:
        """Same user and host, new password."""
        url = _url(current, context.secret_id)
        if not urlsplit(url).hostname:
            raise RotationError(f"secret {context.secret_id}: VALKEY_URL needs a host")
        return {**current, "VALKEY_URL": with_password(url, secrets.token_urlsafe(32))}

    def _admin_url(self, current_url: str, context: RotationContext) -> str:
        admin_id = context.secret_id + ADMIN_SUFFIX
        try:
            document = read_document(context.client, admin_id)
        except SecretNotFound:
            return current_url
        admin = document.get("VALKEY_ADMIN_URL")
        if not isinstance(admin, str):
            raise RotationError(f"secret {admin_id}: needs VALKEY_ADMIN_URL")
        return admin

    async def apply(
        self, current: Document, pending: Document, context: RotationContext
    ) -> list[str]:
        """The user accepts the current and the new password, and no other."""
        current_url = _url(current, context.secret_id)
        new_url = _url(pending, context.secret_id)
        user = user_of(current_url) or "default"
        admin = client_for(self._admin_url(current_url, context), context)
        notes = [f"{user}: accepts the current and the new password"]
        try:
            # Not acl_setuser(): its defaults would also switch the user off.
            await cast(Any, admin).execute_command(
                "ACL",
                "SETUSER",
                user,
                "resetpass",
                _digest(password_of(current_url)),
                _digest(password_of(new_url)),
            )
            acl_file = await admin.config_get("aclfile")
            if acl_file.get("aclfile"):
                await cast(Any, admin).execute_command("ACL", "SAVE")
            else:
                notes.append("no ACL file: the change is lost if Valkey restarts")
        except valkey.exceptions.ValkeyError as exc:
            raise RotationError(
                f"secret {context.secret_id}: ACL SETUSER failed ({type(exc).__name__})"
            ) from exc
        finally:
            await admin.aclose()
        return notes

    async def verify(self, pending: Document, context: RotationContext) -> None:
        """A fresh connection with the pending URL answers PING as the user."""
        url = _url(pending, context.secret_id)
        client = client_for(url, context)
        try:
            await client.ping()
            who = await client.acl_whoami()
        except (valkey.exceptions.ValkeyError, OSError) as exc:
            raise RotationError(
                f"secret {context.secret_id}: pending URL cannot connect ({type(exc).__name__})"
            ) from exc
        finally:
            await client.aclose()
        name = who.decode() if isinstance(who, bytes) else str(who)
        if name != (user_of(url) or "default"):
            raise RotationError(f"secret {context.secret_id}: connected as {name}")


VALKEY = ValkeyRotator()
