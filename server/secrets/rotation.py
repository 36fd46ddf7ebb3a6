"""Secret rotation: Secrets Manager's four steps, a Lambda handler and the CLI entry (C13).

Entry points:

* :func:`handler` - the Lambda (``infra/cloudformation/secrets-rotation.yaml``).
  It accepts Secrets Manager's step events ``{"SecretId",
  "ClientRequestToken", "Step"}`` and the monthly schedule's
  ``{"source": "graphgate.rotation-schedule", "action": "rotate-all",
  "secret_prefix": "graphgate/<Env>"}``, which rotates every rotatable
  component under the prefix in this process (it holds the permissions the
  steps need), one after the other, and fails at the end if any failed.
* :func:`rotate_component` - what ``graphgate secrets rotate <component>``
  calls: the four steps in this process, one component.

The steps: ``createSecret`` stores the new value as AWSPENDING (once per
token: a retried step reuses it); ``setSecret`` makes the resource accept it
while the current value keeps working; ``testSecret`` proves it works with
a new connection; ``finishSecret`` moves AWSCURRENT to it (AWSPREVIOUS then
names the old version) and drops the AWSPENDING label.

Security: a rotation refuses to start while another is unfinished, and -
when its set step invalidates the AWSPREVIOUS credential - until AWSCURRENT
is older than the cache TTL plus clock skew, because until then a replica
may still be using AWSPREVIOUS. Reports and errors name secrets, roles and
steps, never values.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphgate.server.secrets.client import (
    CURRENT,
    PENDING,
    SecretsClient,
    stages,
    version_with,
)
from graphgate.server.secrets.provider import SecretsProvider
from graphgate.server.secrets.rotate_keys import JWT, OPERATOR
from graphgate.server.secrets.rotate_postgres import POSTGRES
from graphgate.server.secrets.rotate_valkey import VALKEY
from graphgate.server.secrets.steps import (
    STEPS,
    RotationContext,
    RotationError,
    Rotator,
    run_step,
)
from graphgate.server.settings import Settings, parse_settings

_log = logging.getLogger("graphgate.secrets.rotation")

#: Rotatable components, in the order ``rotate-all`` takes them: the rings
#: first (nothing outside the secret changes), the stores last.
ROTATORS: dict[str, Rotator] = {
    "jwt": JWT,
    "operator": OPERATOR,
    "valkey": VALKEY,
    "database": POSTGRES,
}

SCHEDULE_SOURCE = "graphgate.rotation-schedule"


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What one rotation did: its version id, the steps run, and notes for operators."""

    component: str
    secret_id: str
    version_id: str
    steps: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary (no values)."""
        return {
            "component": self.component,
            "secret_id": self.secret_id,
            "version_id": self.version_id,
            "steps": list(self.steps),
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class _Run:
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _rotator(component: str) -> Rotator:
    try:
        return ROTATORS[component]
    except KeyError:
        known = ", ".join(ROTATORS)
        raise RotationError(f"no rotation for component {component!r} (known: {known})") from None


def _split(secret_id: str) -> tuple[str, str]:
    """(base secret name, component) of a component secret's *name*."""
    base, _, component = secret_id.rpartition("/")
    if not base or not component:
        raise RotationError(f"secret {secret_id}: not a graphgate/<env>/<component> name")
    return base, component


async def rotate(
    secret_id: str,
    *,
    settings: Settings,
    client: SecretsClient,
    clock: Callable[[], float] = time.time,
    force: bool = False,
    resume: bool = False,
) -> RotationReport:
    """All four steps for ``secret_id`` (``graphgate/<env>/<component>``), here and now.

    ``settings`` is the deployment's merged view (CA files, TTL, token
    lifetime). ``force`` skips the age guard; ``resume`` continues an
    unfinished rotation (its AWSPENDING version) instead of refusing. Raises
    :class:`RotationError`; a failure after createSecret leaves AWSPENDING in
    place and AWSCURRENT untouched (see the runbook).
    """
    _, component = _split(secret_id)
    token = str(uuid.uuid4())
    if resume:
        labels = await asyncio.to_thread(stages, client, secret_id)
        pending = version_with(labels, PENDING)
        if pending is not None and pending != version_with(labels, CURRENT):
            token = pending
    context = RotationContext(
        client=client,
        secret_id=secret_id,
        component=component,
        token=token,
        settings=settings,
        clock=clock,
    )
    run = _Run()
    for step in STEPS:
        try:
            run.notes += await run_step(step, context, _rotator(component), force=force)
        except RotationError:
            raise
        except Exception as exc:
            raise RotationError(
                f"secret {secret_id}: {step} failed ({type(exc).__name__})"
            ) from exc
        run.steps.append(step)
        _log.info("rotation of %s: %s done (version %s)", secret_id, step, context.token)
    return RotationReport(component, secret_id, context.token, tuple(run.steps), tuple(run.notes))


async def rotate_component(
    component: str,
    *,
    settings: Settings,
    client: SecretsClient,
    clock: Callable[[], float] = time.time,
    force: bool = False,
    resume: bool = False,
) -> RotationReport:
    """``graphgate secrets rotate <component> [--force] [--resume]``.

    Rotates ``{settings.secrets_base_id}/{component}``; components: ``jwt``,
    ``operator``, ``valkey``, ``database``. See :func:`rotate`.
    """
    _rotator(component)
    return await rotate(
        f"{settings.secrets_base_id}/{component}",
        settings=settings,
        client=client,
        clock=clock,
        force=force,
        resume=resume,
    )


def deployment_settings(
    client: SecretsClient,
    base_id: str,
    environ: Mapping[str, str],
    *,
    clock: Callable[[], float] = time.time,
) -> Settings:
    """The merged settings of the deployment under ``base_id`` (unchecked: the
    rotation needs its values, not a service start)."""
    scoped = {**environ, "GRAPHGATE_SECRETS_PREFIX": base_id}
    bootstrap = parse_settings(scoped)
    provider = SecretsProvider.from_settings(bootstrap, scoped, client, clock=clock, validate=False)
    return provider.load()


def _component_names(client: SecretsClient, prefix: str) -> list[str]:
    names: list[str] = []
    request: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [prefix + "/"]}]}
    while True:
        answer = client.list_secrets(**request)
        names += [s["Name"] for s in answer.get("SecretList", [])]
        if not answer.get("NextToken"):
            return names
        request["NextToken"] = answer["NextToken"]


async def rotate_all(
    prefix: str,
    *,
    client: SecretsClient,
    environ: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Rotate every rotatable component secret under ``prefix``; report each.

    Raises :class:`RotationError` after trying all of them if any failed.
    """
    settings = deployment_settings(client, prefix, environ, clock=clock)
    present = {name.removeprefix(prefix + "/") for name in _component_names(client, prefix)}
    rotated: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for component in ROTATORS:
        if component not in present:
            continue
        try:
            report = await rotate_component(
                component, settings=settings, client=client, clock=clock
            )
        except RotationError as exc:
            _log.error("rotation of %s/%s failed: %s", prefix, component, exc)
            failed[component] = str(exc)
            continue
        rotated.append(report.to_json())
    summary = {
        "prefix": prefix,
        "rotated": rotated,
        "failed": failed,
        "skipped": sorted(present - set(ROTATORS)),
    }
    if failed:
        raise RotationError(f"rotation under {prefix} failed for {', '.join(failed)}: {summary}")
    return summary


async def _step_event(
    event: Mapping[str, Any],
    client: SecretsClient,
    environ: Mapping[str, str],
    clock: Callable[[], float],
) -> dict[str, Any]:
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    described = await asyncio.to_thread(client.describe_secret, SecretId=arn)
    name = described["Name"]
    labels: dict[str, list[str]] = described.get("VersionIdsToStages", {})
    # As in AWS's rotation templates: the token must be a version staged for
    # rotation. RotateSecret stages it before calling createSecret; a caller
    # that did not (a test endpoint, a manual run) gets it staged by that step.
    stage = labels.get(token)
    if stage is None and step != "createSecret":
        raise RotationError(f"secret {name}: version {token} has no stage for rotation")
    if stage is not None and CURRENT in stage:
        return {"secret_id": name, "step": step, "status": "already current"}
    if stage is not None and PENDING not in stage:
        raise RotationError(f"secret {name}: version {token} is not AWSPENDING")
    base, component = _split(name)
    context = RotationContext(
        client=client,
        secret_id=name,
        component=component,
        token=token,
        settings=deployment_settings(client, base, environ, clock=clock),
        clock=clock,
    )
    notes = await run_step(step, context, _rotator(component))
    return {"secret_id": name, "step": step, "status": "done", "notes": notes}


def handler(
    event: Mapping[str, Any],
    context: Any = None,
    *,
    client: SecretsClient | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The Lambda entry point: a Secrets Manager step event or the monthly schedule.

    ``client``, ``environ`` and ``clock`` are for tests; Lambda passes only
    ``event`` and ``context``. Raises on failure, so Lambda reports it.
    """
    env = os.environ if environ is None else environ  # the entry point reads its environment
    if client is None:
        from graphgate.server.secrets.client import secrets_client

        client = secrets_client(parse_settings(env))
    if event.get("source") == SCHEDULE_SOURCE:
        if event.get("action") != "rotate-all" or not isinstance(event.get("secret_prefix"), str):
            raise RotationError("scheduled event needs action rotate-all and a secret_prefix")
        return asyncio.run(
            rotate_all(event["secret_prefix"], client=client, environ=env, clock=clock)
        )
    if {"SecretId", "ClientRequestToken", "Step"} <= set(event):
        return asyncio.run(_step_event(event, client, env, clock))
    raise RotationError("unrecognised event: expected a rotation step or the rotation schedule")
