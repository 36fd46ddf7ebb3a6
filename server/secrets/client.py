"""The Secrets Manager calls graphgate makes, behind a small typed interface.

:class:`SecretsClient` is the slice of boto3's ``secretsmanager`` client that
the provider and the rotation use; :func:`secrets_client` builds the real one
from settings (region, endpoint override for a local endpoint in tests).

Security: credentials come from boto3's default chain (the task or Lambda
role); nothing here takes keys from settings. Errors are translated to
:class:`SecretsUnavailable` with the secret's *name* and the AWS error code,
never a secret value.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import boto3
import botocore.config
import botocore.exceptions

from graphgate.server.settings import Settings

Document = dict[str, Any]

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
PREVIOUS = "AWSPREVIOUS"


class SecretsClient(Protocol):
    """The boto3 ``secretsmanager`` operations graphgate calls."""

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        """GetSecretValue."""

    def put_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        """PutSecretValue."""

    def describe_secret(self, **kwargs: Any) -> dict[str, Any]:
        """DescribeSecret."""

    def update_secret_version_stage(self, **kwargs: Any) -> dict[str, Any]:
        """UpdateSecretVersionStage."""

    def list_secrets(self, **kwargs: Any) -> dict[str, Any]:
        """ListSecrets."""


class SecretsUnavailable(Exception):
    """Secrets Manager could not give a secret (network, permissions, format).

    The message names the secret and the cause, never a value.
    """


class SecretNotFound(SecretsUnavailable):
    """The secret (or the requested version of it) does not exist."""


def secrets_client(settings: Settings) -> SecretsClient:
    """A ``secretsmanager`` client for ``AWS_REGION`` (and the endpoint override)."""
    client: SecretsClient = boto3.client(
        "secretsmanager",
        region_name=settings.aws_region,
        endpoint_url=settings.secrets_endpoint_url,
        config=botocore.config.Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=10,
        ),
    )
    return client


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore error ("" for others)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def read_document(
    client: SecretsClient,
    secret_id: str,
    *,
    stage: str | None = CURRENT,
    version_id: str | None = None,
) -> Document:
    """The JSON object stored in a version of ``secret_id``.

    Raises :class:`SecretNotFound` when the secret or version does not exist,
    :class:`SecretsUnavailable` for anything else (including a value that is
    not a JSON object).
    """
    request: dict[str, Any] = {"SecretId": secret_id}
    if stage is not None:
        request["VersionStage"] = stage
    if version_id is not None:
        request["VersionId"] = version_id
    try:
        answer = client.get_secret_value(**request)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            raise SecretNotFound(f"secret {secret_id}: not found") from exc
        raise SecretsUnavailable(f"secret {secret_id}: {code or type(exc).__name__}") from exc
    try:
        document = json.loads(answer["SecretString"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise SecretsUnavailable(f"secret {secret_id}: value is not JSON text") from None
    if not isinstance(document, dict):
        raise SecretsUnavailable(f"secret {secret_id}: value is not a JSON object")
    return document


def stages(client: SecretsClient, secret_id: str) -> dict[str, list[str]]:
    """Version id -> staging labels of ``secret_id`` (DescribeSecret)."""
    try:
        described = client.describe_secret(SecretId=secret_id)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            raise SecretNotFound(f"secret {secret_id}: not found") from exc
        raise SecretsUnavailable(f"secret {secret_id}: {code or type(exc).__name__}") from exc
    found: dict[str, list[str]] = described.get("VersionIdsToStages", {})
    return found


def version_with(labels: dict[str, list[str]], stage: str) -> str | None:
    """The version id carrying ``stage``, if any."""
    return next((v for v, s in labels.items() if stage in s), None)
