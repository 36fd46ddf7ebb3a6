"""Secrets Manager's four rotation steps, and what each secret's rotator provides (C13).

Secrets Manager's protocol has four steps; a :class:`Rotator` supplies the
component-specific part of three of them:

* ``createSecret`` -> :meth:`Rotator.create`: the new value (stored AWSPENDING);
* ``setSecret``    -> :meth:`Rotator.apply`: make the resource accept it;
* ``testSecret``   -> :meth:`Rotator.verify`: prove the new value works;
* ``finishSecret`` is the same for all: AWSCURRENT moves to the new version.

:func:`run_step` runs one step (the Lambda gets them one by one, the CLI all
four); :func:`check_may_start` is the guard before a new version is made.

Every rotator keeps the credential in AWSCURRENT working after finish, so
replicas that still cache it (up to the TTL) never fail; the credential it
invalidates is the one before (AWSPREVIOUS), which the guard in
:mod:`graphgate.server.secrets.rotation` proves nobody can still hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from graphgate.server.secrets.client import (
    CURRENT,
    PENDING,
    PREVIOUS,
    Document,
    SecretNotFound,
    SecretsClient,
    read_document,
    stages,
    version_with,
)
from graphgate.server.secrets.keyring import CLOCK_SKEW_SECONDS
from graphgate.server.settings import Settings

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationError(Exception):
    """A rotation step failed or must not run; the message names the secret, never a value."""


@dataclass(frozen=True, slots=True)
class RotationContext:
    """One rotation of one secret.

    ``settings`` is the merged view (environment, base, components) of the
    deployment being rotated: CA files, token lifetime, cache TTL.
    """

    client: SecretsClient
    secret_id: str
    component: str
    token: str
    settings: Settings
    clock: Callable[[], float]

    @property
    def base_id(self) -> str:
        """The base secret's name (the component secret's parent)."""
        return self.secret_id.rsplit("/", 1)[0]

    def with_settings(self, **changes: object) -> Settings:
        """The deployment's settings with some fields changed (e.g. another URL)."""
        return dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]


class Rotator(Protocol):
    """The component-specific part of a rotation."""

    @property
    def invalidates_previous(self) -> bool:
        """True when :meth:`apply` invalidates the credential AWSPREVIOUS holds."""

    def create(self, current: Document, context: RotationContext) -> Document:
        """The pending value, derived from the current one (keys not owned are kept)."""

    async def apply(
        self, current: Document, pending: Document, context: RotationContext
    ) -> list[str]:
        """Make the resource accept ``pending`` while ``current`` keeps working; notes."""

    async def verify(self, pending: Document, context: RotationContext) -> None:
        """Raise :class:`RotationError` unless ``pending`` really works."""


def _created(client: SecretsClient, secret_id: str, version_id: str) -> float | None:
    # GetSecretValue carries the version's creation date: no extra permission
    # (the rotation role may read its secrets, not list their versions).
    answer = client.get_secret_value(SecretId=secret_id, VersionId=version_id)
    created = answer.get("CreatedDate")
    return float(created.timestamp()) if created is not None else None


def check_may_start(context: RotationContext, rotator: Rotator, *, force: bool) -> None:
    """Refuse a rotation that could break replicas (see the module's Security note)."""
    labels = stages(context.client, context.secret_id)
    pending = version_with(labels, PENDING)
    current = version_with(labels, CURRENT)
    if pending is not None and pending != current and pending != context.token:
        raise RotationError(
            f"secret {context.secret_id}: rotation {pending} is unfinished;"
            " resume it or clear its AWSPENDING label first"
        )
    if force or not rotator.invalidates_previous or version_with(labels, PREVIOUS) is None:
        return
    created = _created(context.client, context.secret_id, current) if current else None
    wait = context.settings.secrets_ttl_seconds + CLOCK_SKEW_SECONDS
    if created is not None and context.clock() - created < wait:
        raise RotationError(
            f"secret {context.secret_id}: the current version is younger than the cache TTL"
            f" plus skew ({wait:.0f}s); replicas may still use the previous one"
        )


async def _read(context: RotationContext, **where: Any) -> dict[str, Any]:
    return await asyncio.to_thread(read_document, context.client, context.secret_id, **where)


async def run_step(
    step: str, context: RotationContext, rotator: Rotator, *, force: bool = False
) -> list[str]:
    """Run one of Secrets Manager's four steps for ``context``; returns notes."""
    client, secret_id, token = context.client, context.secret_id, context.token
    if step == "createSecret":
        try:
            await _read(context, stage=PENDING, version_id=token)
            return ["pending version already exists"]
        except SecretNotFound:
            pass
        await asyncio.to_thread(check_may_start, context, rotator, force=force)
        pending = rotator.create(await _read(context, stage=CURRENT), context)
        await asyncio.to_thread(
            client.put_secret_value,
            SecretId=secret_id,
            ClientRequestToken=token,
            SecretString=json.dumps(pending),
            VersionStages=[PENDING],
        )
        return []
    if step == "setSecret":
        current = await _read(context, stage=CURRENT)
        pending = await _read(context, stage=PENDING, version_id=token)
        return await rotator.apply(current, pending, context)
    if step == "testSecret":
        await rotator.verify(await _read(context, stage=PENDING, version_id=token), context)
        return []
    if step == "finishSecret":
        labels = await asyncio.to_thread(stages, client, secret_id)
        current_version = version_with(labels, CURRENT)
        if current_version != token:
            await asyncio.to_thread(
                client.update_secret_version_stage,
                SecretId=secret_id,
                VersionStage=CURRENT,
                MoveToVersionId=token,
                RemoveFromVersionId=current_version,
            )
        if PENDING in labels.get(token, []):
            await asyncio.to_thread(
                client.update_secret_version_stage,
                SecretId=secret_id,
                VersionStage=PENDING,
                RemoveFromVersionId=token,
            )
        return []
    raise RotationError(f"secret {secret_id}: unknown step {step!r}")
