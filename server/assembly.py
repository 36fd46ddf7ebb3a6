"""Builds the domain services from settings and open stores.

Everything a server needs besides the chain itself is constructed here, once,
so that handlers and interceptors receive ready objects through their
constructors and nothing reads settings on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.lifecycle import Stores
from graphgate.server.observability import EngineObserver, Metrics
from graphgate.server.secrets import RotatingTokenService
from graphgate.server.secrets import jwt_keys as ring_jwt_keys
from graphgate.server.secrets import operator_keys as ring_operator_keys
from graphgate.server.services.accounts import AccountService
from graphgate.server.services.admission import AdmissionController, PressureSource
from graphgate.server.services.api_keys import ApiKeyService
from graphgate.server.services.authentication import Authenticator
from graphgate.server.services.backups import BackupService
from graphgate.server.services.brute_force import BruteForceGuard
from graphgate.server.services.captcha import CaptchaPolicy, TurnstileVerifier
from graphgate.server.services.graphs import GraphService, QueryLimits
from graphgate.server.services.operator_access import OperatorAccess
from graphgate.server.services.passwords import PasswordHasher, PasswordPolicy
from graphgate.server.services.rate_limits import (
    BreakerState,
    CircuitBreaker,
    LocalRateLimiter,
    RateLimitPolicy,
    parse_windows,
)
from graphgate.server.services.uploads import UploadLimits, UploadService
from graphgate.server.settings import Settings
from graphgate.server.stores.api_keys import ApiKeyStore
from graphgate.server.stores.auth_failures import ValkeyAuthFailureStore, identity_digest
from graphgate.server.stores.backup_objects import BackupObjects
from graphgate.server.stores.backups import BackupStore
from graphgate.server.stores.gate import GateStore
from graphgate.server.stores.graphs import GraphStore
from graphgate.server.stores.objects import ObjectStore
from graphgate.server.stores.uploads import UploadStore
from graphgate.server.stores.users import UserStore


@dataclass(frozen=True, slots=True)
class Services:
    """The domain services and what the chain needs from them."""

    settings: Settings
    stores: Stores
    audit: AuditLog
    gate: GateStore
    accounts: AccountService
    api_keys: ApiKeyService
    authenticator: Authenticator
    operators: OperatorAccess
    admission: AdmissionController
    graphs: GraphService
    backups: BackupService
    metrics: Metrics
    uploads: UploadService
    graph_store: GraphStore
    rate_policy: RateLimitPolicy
    breaker: CircuitBreaker
    local_limiter: LocalRateLimiter
    identity_secret: bytes
    clock: Callable[[], float]
    password_hasher: PasswordHasher
    key_hasher: PasswordHasher
    captcha: TurnstileVerifier | None

    def address_digest(self, address: str) -> str:
        """A keyed digest of a client address (never stored or logged in clear)."""
        return identity_digest("i", address, secret=self.identity_secret).hexdigest[:32]

    async def aclose(self) -> None:
        """Release thread pools and HTTP clients."""
        await self.uploads.aclose()
        self.password_hasher.close()
        self.key_hasher.close()
        if self.captcha is not None:
            await self.captcha.aclose()


def identity_secret(settings: Settings) -> bytes:
    """The key of the digests that stand for IPs and emails in Valkey.

    ``GRAPHGATE_IDENTITY_HASH_KEY`` when set (it never rotates, so brute-force
    counters and rate windows survive a JWT key rotation); otherwise derived
    from the JWT signing key, so every replica still agrees.
    """
    base = (settings.identity_hash_key or settings.jwt_secret_key or "").encode()
    return hmac.new(base, b"graphgate identity digests v1", hashlib.sha256).digest()


def build_services(
    settings: Settings,
    stores: Stores,
    audit: AuditLog,
    *,
    clock: Callable[[], float] = time.time,
    pressure: PressureSource | None = None,
    metrics: Metrics | None = None,
    jwt_keys: Callable[[], Sequence[str]] | None = None,
    operator_keys: Callable[[], Sequence[str]] | None = None,
) -> Services:
    """Construct every domain service for one server process.

    ``clock`` (Unix seconds) drives brute-force windows and rate windows;
    tests pass a fake one so that nothing sleeps for minutes. ``pressure``
    replaces the process's memory and CPU readings for admission control.
    ``jwt_keys`` and ``operator_keys`` follow rotated keys (the secrets
    provider's); by default the key rings of ``settings`` are used.
    """
    if not settings.jwt_secret_key:
        raise ValueError("a JWT signing key must be resolved before building services")
    secret = identity_secret(settings)
    gate = GateStore(stores.valkey)
    users = UserStore(stores.postgres)
    keys = ApiKeyStore(stores.postgres)

    def breaker_changed(state: BreakerState) -> None:
        audit.emit(
            AuditEventType.SERVICE_DEGRADED,
            risk=RiskLevel.HIGH if state is BreakerState.OPEN else RiskLevel.LOW,
            outcome=state.value,
            reason="Valkey circuit breaker " + state.value,
        )

    breaker = CircuitBreaker(on_change=breaker_changed)
    metrics = metrics if metrics is not None else Metrics()
    metrics.watch_breaker(breaker)

    def admission_changed(shedding: bool) -> None:
        audit.emit(
            AuditEventType.SERVICE_DEGRADED,
            risk=RiskLevel.HIGH if shedding else RiskLevel.LOW,
            outcome="shedding" if shedding else "admitting",
            reason="admission control",
        )

    password_hasher = PasswordHasher(cost=settings.bcrypt_rounds)
    # A key is verified by bcrypt once per cache period; a burst of first calls
    # with a new key may queue rather than be refused.
    key_hasher = PasswordHasher(cost=settings.api_key_bcrypt_rounds, max_waiting=64)
    tokens = RotatingTokenService(
        keys=jwt_keys or (lambda: ring_jwt_keys(settings, time.time())),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime_seconds=settings.jwt_expiry_seconds,
    )
    captcha = (
        TurnstileVerifier(settings.turnstile_secret_key or "", settings.turnstile_verify_url)
        if settings.captcha_enabled
        else None
    )
    guard = BruteForceGuard(
        ValkeyAuthFailureStore(stores.valkey), identity_secret=secret, clock=clock
    )
    accounts = AccountService(
        users=users,
        keys=keys,
        gate=gate,
        tokens=tokens,
        hasher=password_hasher,
        guard=guard,
        captcha_policy=CaptchaPolicy(
            enabled=settings.captcha_enabled, mode=settings.captcha_mode.value
        ),
        captcha_verifier=captcha,
        policy=PasswordPolicy(),
        audit=audit,
        refresh_grace_seconds=settings.refresh_grace_seconds,
    )
    authenticator = Authenticator(
        tokens=tokens,
        gate=gate,
        users=users,
        keys=keys,
        key_hasher=key_hasher,
        breaker=breaker,
        audit=audit,
        clock=clock,
    )
    graph_store = GraphStore(stores.postgres)
    admission = AdmissionController(source=pressure, on_change=admission_changed)
    metrics.watch_admission(admission)
    upload_objects = ObjectStore(stores.s3, stores.s3_bucket)
    backups = BackupService(
        store=BackupStore(stores.postgres),
        objects=BackupObjects(stores.s3, stores.s3_bucket),
        engine=stores.engine,
        keys=settings.backup_encryption_keys,
        audit=audit,
        work_dir=stores.engine.data_dir / "backup-work",
    )
    return Services(
        settings=settings,
        graphs=GraphService(
            store=graph_store,
            engine=stores.engine,
            audit=audit,
            limits=QueryLimits(),
            # A deleted graph leaves no upload or backup objects in S3.
            cleanups=(upload_objects.delete_graph_objects, backups.forget_graph),
            observer=EngineObserver(metrics),
        ),
        metrics=metrics,
        graph_store=graph_store,
        backups=backups,
        uploads=UploadService(
            store=UploadStore(stores.postgres),
            objects=upload_objects,
            engine=stores.engine,
            audit=audit,
            limits=UploadLimits(),
            work_dir=settings.data_dir / "uploads",
            metrics=metrics,
        ),
        stores=stores,
        audit=audit,
        gate=gate,
        accounts=accounts,
        api_keys=ApiKeyService(keys=keys, gate=gate, hasher=key_hasher, audit=audit),
        authenticator=authenticator,
        operators=OperatorAccess(
            operator_keys=operator_keys or (lambda: ring_operator_keys(settings)), audit=audit
        ),
        admission=admission,
        rate_policy=RateLimitPolicy(windows=parse_windows(settings.rate_limits)),
        breaker=breaker,
        local_limiter=LocalRateLimiter(replicas=settings.replicas, clock=clock),
        identity_secret=secret,
        clock=clock,
        password_hasher=password_hasher,
        key_hasher=key_hasher,
        captcha=captcha,
    )
