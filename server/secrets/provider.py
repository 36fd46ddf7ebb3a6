"""Settings from AWS Secrets Manager, cached for a TTL and re-read after it (C12).

Layout: a base secret ``graphgate/{env}`` and component secrets
``graphgate/{env}/{component}`` (``database``, ``valkey``, ``jwt``,
``operator``, ``backup``, ``captcha``), each a JSON object whose keys are
settings names (``{"DATABASE_URL": "..."}``). Keys starting with ``_`` are
rotation metadata, not settings.

Precedence: **environment < base < components** (in the configured order).
A component secret is what rotation rewrites, so it must win over a stale
copy in the base secret or in a task definition; otherwise a rotated value
would silently not take effect.

Security:

* The settings that choose the secrets source (``GRAPHGATE_ENV``,
  ``GRAPHGATE_SECRETS_*``) come only from the process environment; a secret
  that names one is refused, so a secret cannot switch production checks
  off or point the service at another secret store.
* An unknown key in a secret is refused (a typo would otherwise fall back
  to a default silently). Problems name the secret and the key, never a value.
* A refresh that fails (Secrets Manager unreachable, a rotated value that
  breaks a rule) keeps the settings that work, logs the reason, and tries
  again at the next tick rather than an hour later: fail static, loudly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from graphgate.server.errors import ConfigurationError
from graphgate.server.secrets.client import (
    Document,
    SecretNotFound,
    SecretsClient,
    SecretsUnavailable,
    read_document,
)
from graphgate.server.secrets.keyring import jwt_keys, next_activation, operator_keys
from graphgate.server.settings import (
    BOOTSTRAP_SETTINGS,
    SecretsSource,
    Settings,
    load_settings,
    parse_settings,
    setting_names,
)

_log = logging.getLogger("graphgate.secrets")

ChangeCallback = Callable[[Settings, frozenset[str]], None]


def _as_setting(value: object) -> str | None:
    """A secret's JSON value as the string the settings parser reads."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def merge_documents(
    environ: Mapping[str, str], documents: Sequence[tuple[str, Document]]
) -> tuple[dict[str, str], list[str]]:
    """``environ`` overlaid with each secret in order (later wins), and the problems.

    Returns the merged mapping and one problem line per refused key.
    """
    known = setting_names()
    merged = dict(environ)
    problems: list[str] = []
    for secret_id, document in documents:
        for key, value in document.items():
            if key.startswith("_"):
                continue
            if key in BOOTSTRAP_SETTINGS:
                problems.append(f"secret {secret_id}: {key} may only come from the environment")
            elif key not in known:
                problems.append(f"secret {secret_id}: {key} is not a setting")
            elif (text := _as_setting(value)) is not None:
                merged[key] = text
    return merged, problems


@dataclass(frozen=True, slots=True)
class _Snapshot:
    settings: Settings
    values: dict[str, str]
    fetched_at: float


class SecretsProvider:
    """Reads the base and component secrets, caches them for ``ttl_seconds``.

    ``clock`` is Unix seconds (injectable for tests); it drives the TTL and
    key activation. :meth:`refresh` re-reads after the TTL; :meth:`arefresh`
    does the network part in a thread and runs callbacks on the event loop;
    :meth:`run` is the background loop a server starts.
    """

    def __init__(
        self,
        client: SecretsClient,
        *,
        environ: Mapping[str, str],
        base_id: str,
        components: Sequence[str],
        ttl_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
        validate: bool = True,
    ) -> None:
        self._client = client
        self._environ = dict(environ)
        self.secret_ids = (base_id, *(f"{base_id}/{c}" for c in components))
        self._ttl = ttl_seconds
        self._clock = clock
        self._validate = validate
        self._snapshot: _Snapshot | None = None
        self._callbacks: list[ChangeCallback] = []
        self._jwt_cache: tuple[object, float | None, tuple[str, ...]] | None = None
        self.failures = 0

    @classmethod
    def from_settings(
        cls,
        bootstrap: Settings,
        environ: Mapping[str, str],
        client: SecretsClient,
        *,
        clock: Callable[[], float] = time.time,
        validate: bool = True,
    ) -> SecretsProvider:
        """A provider for the secrets ``bootstrap`` names (``GRAPHGATE_SECRETS_*``)."""
        return cls(
            client,
            environ=environ,
            base_id=bootstrap.secrets_base_id,
            components=bootstrap.secrets_components,
            ttl_seconds=bootstrap.secrets_ttl_seconds,
            clock=clock,
            validate=validate,
        )

    # --- reading -----------------------------------------------------------

    def _read(self) -> _Snapshot:
        """Fetch every secret and build settings; raises, never half-applies."""
        documents: list[tuple[str, Document]] = []
        for number, secret_id in enumerate(self.secret_ids):
            try:
                documents.append((secret_id, read_document(self._client, secret_id)))
            except SecretNotFound:
                if number == 0:  # the base secret must exist; components are optional
                    raise
        values, problems = merge_documents(self._environ, documents)
        if problems:
            raise ConfigurationError(problems)
        build = load_settings if self._validate else parse_settings
        return _Snapshot(build(values), values, self._clock())

    def load(self) -> Settings:
        """The first read (at start-up).

        Raises :class:`ConfigurationError` (every problem, including C21's in
        production) or :class:`SecretsUnavailable`.
        """
        self._snapshot = self._read()
        return self._snapshot.settings

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        if self._snapshot is None:
            raise RuntimeError("SecretsProvider.load() has not run")
        return self._snapshot.settings

    def due(self) -> bool:
        """True when the cache is older than the TTL."""
        snapshot = self._snapshot
        return snapshot is None or self._clock() - snapshot.fetched_at >= self._ttl

    def _apply(self, fresh: _Snapshot) -> frozenset[str]:
        old = self._snapshot
        self._snapshot = fresh
        if old is None:
            return frozenset()
        names = set(old.values) | set(fresh.values)
        changed = frozenset(n for n in names if old.values.get(n) != fresh.values.get(n))
        if changed:
            _log.info("secrets changed: %s", ", ".join(sorted(changed)))
            for callback in list(self._callbacks):
                try:
                    callback(fresh.settings, changed)
                except Exception:
                    # One consumer's bug must not stop the others, or the refresh loop.
                    _log.exception("a secrets change callback failed")
        return changed

    def _failed(self, exc: Exception) -> frozenset[str]:
        self.failures += 1
        detail = "; ".join(exc.problems) if isinstance(exc, ConfigurationError) else str(exc)
        _log.error("secrets refresh failed, keeping the settings in force: %s", detail)
        return frozenset()

    def refresh(self, *, force: bool = False) -> frozenset[str]:
        """Re-read the secrets if the TTL has passed (or ``force``).

        Returns the names of the settings that changed (empty when nothing
        was due, nothing changed, or the read failed).
        """
        if not (force or self.due()):
            return frozenset()
        try:
            fresh = self._read()
        except (ConfigurationError, SecretsUnavailable) as exc:
            return self._failed(exc)
        return self._apply(fresh)

    async def arefresh(self, *, force: bool = False) -> frozenset[str]:
        """:meth:`refresh` with the network calls in a thread, callbacks on the loop."""
        if not (force or self.due()):
            return frozenset()
        try:
            fresh = await asyncio.to_thread(self._read)
        except (ConfigurationError, SecretsUnavailable) as exc:
            return self._failed(exc)
        return self._apply(fresh)

    async def run(self, *, interval: float = 60.0) -> None:
        """Refresh whenever due, checking every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.arefresh()
            except Exception:  # keep refreshing whatever one attempt hit
                self.failures += 1
                _log.exception("secrets refresh failed unexpectedly")

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback(settings, changed_names)`` after each change (on the loop)."""
        self._callbacks.append(callback)

    # --- what rotation feeds -------------------------------------------------

    def current_jwt_keys(self) -> tuple[str, ...]:
        """JWT keys for ``TokenService``: the one to sign with first, then all others.

        Cached until the settings change or the next key activates, so the
        hot path compares one tuple by identity.
        """
        settings = self.settings
        now = self._clock()
        cached = self._jwt_cache
        if cached is not None and cached[0] is settings and (cached[1] is None or now < cached[1]):
            return cached[2]
        keys = jwt_keys(settings, now)
        self._jwt_cache = (settings, next_activation(settings.jwt_keyring, now), keys)
        return keys

    def current_operator_keys(self) -> tuple[str, ...]:
        """Every operator API key accepted now (old and new during a rotation)."""
        return operator_keys(self.settings)


def load_configuration(
    environ: Mapping[str, str],
    *,
    client: SecretsClient | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Settings, SecretsProvider | None]:
    """The settings to start with, and the provider that keeps them fresh.

    With ``GRAPHGATE_SECRETS_SOURCE=env`` (default) this is
    ``load_settings(environ)`` and no provider. With ``aws`` the bootstrap
    settings name the secrets; they are read, merged over ``environ`` and
    checked like any settings (C21 in production).

    Raises :class:`ConfigurationError`; an unreachable or malformed secret
    becomes one problem line naming the secret.
    """
    bootstrap = parse_settings(environ)
    if bootstrap.secrets_source is not SecretsSource.AWS:
        return load_settings(environ), None
    if not bootstrap.aws_region:
        raise ConfigurationError(["AWS_REGION: required when GRAPHGATE_SECRETS_SOURCE is aws"])
    if client is None:
        from graphgate.server.secrets.client import secrets_client

        client = secrets_client(bootstrap)
    provider = SecretsProvider.from_settings(bootstrap, environ, client, clock=clock)
    try:
        settings = provider.load()
    except SecretsUnavailable as exc:
        raise ConfigurationError([f"GRAPHGATE_SECRETS_SOURCE=aws: {exc}"]) from exc
    return settings, provider
