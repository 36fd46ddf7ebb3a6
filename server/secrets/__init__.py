"""Secrets: settings from AWS Secrets Manager with a TTL cache (C12) and rotation (C13).

* :func:`load_configuration` - the settings to start with, and the
  :class:`SecretsProvider` that re-reads them after the TTL;
* :class:`RotatingTokenService` - a ``TokenService`` following the JWT ring;
* :class:`KeyringCheck` - constant-time operator key check against a ring;
* :func:`store_credentials_follower` - open pools follow rotated store passwords;
* :func:`rotate_component` / :func:`handler` - rotation (see ``rotation``).

Layout, precedence, rotation steps and the runbook: docs/operations/secrets.md.
"""

from __future__ import annotations

from graphgate.server.secrets.client import (
    SecretNotFound,
    SecretsClient,
    SecretsUnavailable,
    secrets_client,
)
from graphgate.server.secrets.follow import (
    ValkeyCredentials,
    store_credentials_follower,
    valkey_url_and_credentials,
)
from graphgate.server.secrets.keyring import (
    KeyringCheck,
    in_use,
    jwt_keys,
    operator_key_to_present,
    operator_keys,
)
from graphgate.server.secrets.provider import SecretsProvider, load_configuration, merge_documents
from graphgate.server.secrets.rotation import (
    ROTATORS,
    RotationReport,
    handler,
    rotate,
    rotate_all,
    rotate_component,
)
from graphgate.server.secrets.steps import RotationError
from graphgate.server.secrets.token_keys import RotatingTokenService

__all__ = [
    "ROTATORS",
    "KeyringCheck",
    "RotatingTokenService",
    "RotationError",
    "RotationReport",
    "SecretNotFound",
    "SecretsClient",
    "SecretsProvider",
    "SecretsUnavailable",
    "ValkeyCredentials",
    "handler",
    "in_use",
    "jwt_keys",
    "load_configuration",
    "merge_documents",
    "operator_key_to_present",
    "operator_keys",
    "rotate",
    "rotate_all",
    "rotate_component",
    "secrets_client",
    "store_credentials_follower",
    "valkey_url_and_credentials",
]
