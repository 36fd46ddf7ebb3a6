"""Secrets a development install makes for itself, kept in the data directory.

Production takes every secret from its settings (and refuses to start without
them, C21). On a laptop, ``graphgate serve`` should just work: a missing JWT
signing key is generated once and kept in ``<data_dir>/secrets/`` with mode
0600, so sessions survive restarts; so are an operator API key, which the
``graphgate users …`` commands read from the same place, and a Fernet key
for encrypted backups.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from graphgate.server.settings import Settings


def _read_or_create(path: Path, *, fernet: bool = False) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = Fernet.generate_key().decode() if fernet else secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    return value


def operator_key_path(data_dir: Path) -> Path:
    """Where a development install keeps its generated operator API key."""
    return data_dir / "secrets" / "operator-api-key"


def with_local_secrets(settings: Settings) -> Settings:
    """``settings`` with generated development secrets filled in where unset:
    the JWT signing key and the operator API key (the CLI reads the latter
    from the same file)."""
    if settings.is_production:
        return settings
    if not settings.jwt_secret_key:
        key = _read_or_create(settings.data_dir / "secrets" / "jwt-signing-key")
        settings = dataclasses.replace(settings, jwt_secret_key=key)
    if not settings.operator_api_key:
        key = _read_or_create(operator_key_path(settings.data_dir))
        settings = dataclasses.replace(settings, operator_api_key=key)
    if not settings.identity_hash_key:
        key = _read_or_create(settings.data_dir / "secrets" / "identity-hash-key")
        settings = dataclasses.replace(settings, identity_hash_key=key)
    if not settings.backup_encryption_keys:
        key = _read_or_create(settings.data_dir / "secrets" / "backup-key", fernet=True)
        settings = dataclasses.replace(settings, backup_encryption_keys=(key,))
    return settings
