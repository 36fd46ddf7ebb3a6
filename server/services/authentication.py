"""Turning a bearer JWT or an API key into a principal (C1, C2, C3, C5).

The hot path costs one Valkey round trip and no bcrypt: the gate script checks
the token's revocation marker, the user's state ("still active", "tokens valid
after") and counts the rate limit, or finds the API key's verified cache
entry. PostgreSQL (and, for keys, one bcrypt) is touched only when a cache is
cold. Revocation lookups fail closed: when Valkey cannot answer, a bearer
token is refused. API keys then fall back to PostgreSQL, which is where their
revocation is recorded anyway.

Security: key and token text never reach a log or an audit event; an API key
with an unknown lookup id costs no bcrypt; a wrong secret for a cached key is
refused by comparing SHA-256 digests in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal, PrincipalKind
from graphgate.server.errors import StoreUnavailable, Unauthenticated
from graphgate.server.services.passwords import PasswordHasher
from graphgate.server.services.rate_limits import CircuitBreaker
from graphgate.server.services.tokens import Claims, TokenService
from graphgate.server.stores.api_keys import ApiKeyStore
from graphgate.server.stores.gate import GateResult, GateStore, RateSpec
from graphgate.server.stores.users import UserStore

_log = logging.getLogger("graphgate.authentication")

#: API keys are "gg_" and 64 hex characters; the first 16 are a public lookup id.
API_KEY_PATTERN = re.compile(r"gg_[0-9a-f]{64}")
API_KEY_PREFIX = "gg_"
LOOKUP_ID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A verified caller and, when the gate counted the call, its rate decision."""

    principal: Principal
    rate: GateResult | None


def lookup_id_of(api_key: str) -> str:
    """The public lookup id embedded in a well-formed key."""
    return api_key[len(API_KEY_PREFIX) : len(API_KEY_PREFIX) + LOOKUP_ID_LENGTH]


def key_digest(api_key: str) -> str:
    """The SHA-256 (hex) of a key: the cache's proof of a verified secret."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def _ms(instant: datetime | float) -> int:
    seconds = instant.timestamp() if isinstance(instant, datetime) else instant
    return int(seconds * 1000)


class Authenticator:
    """Verifies credentials against tokens, Valkey and PostgreSQL."""

    def __init__(
        self,
        *,
        tokens: TokenService,
        gate: GateStore,
        users: UserStore,
        keys: ApiKeyStore,
        key_hasher: PasswordHasher,
        breaker: CircuitBreaker,
        audit: AuditLog,
        key_cache_seconds: int = 60,
        touch_interval_seconds: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = tokens
        self._gate = gate
        self._users = users
        self._keys = keys
        self._hasher = key_hasher
        self._breaker = breaker
        self._audit = audit
        self._cache_ms = key_cache_seconds * 1000
        self._touch_ms = touch_interval_seconds * 1000
        self._clock = clock
        self._background: set[asyncio.Task[None]] = set()
        self._local_proofs: OrderedDict[str, tuple[str, float]] = OrderedDict()

    # --- bearer tokens ---------------------------------------------------

    async def authenticate_bearer(self, token: str, rate: RateSpec | None) -> AuthResult:
        """The principal of a valid, unrevoked token of an active user.

        Raises :class:`Unauthenticated` (audited) otherwise, also when Valkey
        cannot answer (fail closed).
        """
        try:
            claims = self._tokens.verify(token)
        except Unauthenticated as error:
            expired = error.reason == "TOKEN_EXPIRED"
            self._audit.emit(
                AuditEventType.TOKEN_EXPIRED if expired else AuditEventType.TOKEN_INVALID,
                risk=RiskLevel.LOW if expired else RiskLevel.MEDIUM,
                outcome="refused",
                reason=error.reason,
            )
            raise
        result = await self._check_user(claims, rate)
        if result.status == "cold":
            await self._load_user_state(claims.user_id)
            result = await self._check_user(claims, rate)
        self._refuse_bad_user_status(result.status, claims.user_id)
        principal = Principal(
            kind=PrincipalKind.USER,
            user_id=claims.user_id,
            tier=result.detail or "free",
            token_id=claims.token_id,
            token_expires_at=claims.expires_at,
            token_issued_at=claims.issued_at,
            fingerprint=claims.fingerprint,
        )
        return AuthResult(principal=principal, rate=result if rate is not None else None)

    async def _check_user(self, claims: Claims, rate: RateSpec | None) -> GateResult:
        if not self._breaker.allow():
            self._fail_closed("circuit breaker open")
        try:
            result = await self._gate.check_user(
                claims.user_id,
                claims.token_id,
                _ms(claims.issued_at),
                _ms(self._clock()),
                rate,
            )
        except StoreUnavailable as error:
            self._breaker.failure()
            self._fail_closed(error.detail)
        self._breaker.success()
        return result

    def _fail_closed(self, why: str) -> NoReturn:
        self._audit.emit(
            AuditEventType.TOKEN_REVOKED,
            risk=RiskLevel.HIGH,
            outcome="refused",
            reason="REVOCATION_UNAVAILABLE",
        )
        raise Unauthenticated(reason="REVOCATION_UNAVAILABLE", detail=why)

    async def _load_user_state(self, user_id: str) -> None:
        user = await self._users.by_id(user_id)
        if user is None:
            self._audit.emit(
                AuditEventType.TOKEN_INVALID,
                risk=RiskLevel.HIGH,
                outcome="refused",
                reason="UNKNOWN_USER",
            )
            raise Unauthenticated(reason="TOKEN_INVALID", detail="token of an unknown user")
        try:
            await self._gate.put_user_state(
                user_id,
                active=user.active,
                valid_after_ms=_ms(user.tokens_valid_after),
                tier=user.tier,
            )
        except StoreUnavailable as error:
            self._breaker.failure()
            self._fail_closed(error.detail)

    def _refuse_bad_user_status(self, status: str, user_id: str) -> None:
        if status == "ok":
            return
        if status == "reused":
            self._audit.emit(
                AuditEventType.TOKEN_REUSED,
                risk=RiskLevel.HIGH,
                outcome="refused",
                reason="refreshed token used after its grace period: possible theft",
                user_id=user_id,
            )
            raise Unauthenticated(reason="TOKEN_REVOKED")
        if status == "inactive":
            self._audit.emit(
                AuditEventType.AUTH_FAILURE,
                risk=RiskLevel.MEDIUM,
                outcome="refused",
                reason="USER_INACTIVE",
            )
            raise Unauthenticated(reason="USER_INACTIVE")
        self._audit.emit(
            AuditEventType.TOKEN_REVOKED,
            risk=RiskLevel.MEDIUM,
            outcome="refused",
            reason="issued before a password change or deactivation"
            if status == "stale"
            else "revoked",
            user_id=user_id,
        )
        raise Unauthenticated(reason="TOKEN_REVOKED")

    # --- API keys --------------------------------------------------------

    async def authenticate_api_key(self, api_key: str, rate: RateSpec | None) -> AuthResult:
        """The principal of a valid, unrevoked, unexpired key of an active user."""
        if not API_KEY_PATTERN.fullmatch(api_key):
            self._refuse_key(AuditEventType.API_KEY_INVALID, "MALFORMED")
        lookup_id = lookup_id_of(api_key)
        digest = key_digest(api_key)
        result: GateResult | None = None
        if self._breaker.allow():
            try:
                result = await self._gate.check_key(
                    lookup_id, _ms(self._clock()), self._touch_ms, rate
                )
                self._breaker.success()
            except StoreUnavailable:
                self._breaker.failure()
        if result is not None and result.status == "revoked":
            self._refuse_key(AuditEventType.API_KEY_INVALID, "REVOKED")
        if result is not None and result.status == "ok":
            return self._from_cache(result, lookup_id, digest, rate)
        return await self._from_database(api_key, lookup_id, digest, cache=result is not None)

    def _from_cache(
        self, result: GateResult, lookup_id: str, digest: str, rate: RateSpec | None
    ) -> AuthResult:
        sha, user_id, key_id, tier, email, expires_ms, touch = result.detail.split("|")
        if not hmac.compare_digest(sha, digest):
            self._refuse_key(AuditEventType.API_KEY_INVALID, "WRONG_SECRET")
        if expires_ms and int(expires_ms) <= _ms(self._clock()):
            self._refuse_key(AuditEventType.API_KEY_EXPIRED, "EXPIRED")
        if touch == "1":
            self._touch_later(key_id)
        principal = Principal(
            kind=PrincipalKind.API_KEY,
            user_id=user_id,
            email=email,
            tier=tier,
            api_key_id=key_id,
            key_lookup_id=lookup_id,
        )
        return AuthResult(principal=principal, rate=result if rate is not None else None)

    async def _from_database(
        self, api_key: str, lookup_id: str, digest: str, *, cache: bool
    ) -> AuthResult:
        found = await self._keys.by_lookup_id(lookup_id)
        if found is None:
            self._refuse_key(AuditEventType.API_KEY_INVALID, "UNKNOWN")
        record, owner = found
        if record.revoked_at is not None:
            self._refuse_key(AuditEventType.API_KEY_INVALID, "REVOKED")
        if record.expires_at is not None and _ms(record.expires_at) <= _ms(self._clock()):
            self._refuse_key(AuditEventType.API_KEY_EXPIRED, "EXPIRED")
        if not owner.active:
            self._refuse_key(AuditEventType.API_KEY_INVALID, "USER_INACTIVE")
        if not self._proven_recently(record.api_key_id, digest):
            if not await self._hasher.verify(api_key, record.secret_hash):
                self._refuse_key(AuditEventType.API_KEY_INVALID, "WRONG_SECRET")
            self._remember_proof(record.api_key_id, digest)
        if cache:
            fields = {
                "sha": digest,
                "user_id": record.user_id,
                "key_id": record.api_key_id,
                "tier": owner.tier,
                "email": owner.email,
                "expires_ms": str(_ms(record.expires_at)) if record.expires_at else "",
            }
            try:
                await self._gate.cache_key(lookup_id, fields, self._cache_ms)
            except StoreUnavailable:
                self._breaker.failure()
        self._touch_later(record.api_key_id)
        principal = Principal(
            kind=PrincipalKind.API_KEY,
            user_id=record.user_id,
            email=owner.email,
            tier=owner.tier,
            api_key_id=record.api_key_id,
            key_lookup_id=lookup_id,
        )
        return AuthResult(principal=principal, rate=None)

    def _proven_recently(self, api_key_id: str, digest: str) -> bool:
        # While Valkey cannot cache verifications, every call would pay a
        # bcrypt and a slow Valkey would turn load into a bcrypt storm. This
        # process remembers which key digests it verified; revocation, expiry
        # and the owner's state are still read from PostgreSQL on every call.
        proof = self._local_proofs.get(api_key_id)
        if proof is None or proof[1] < self._clock():
            return False
        return hmac.compare_digest(proof[0], digest)

    def _remember_proof(self, api_key_id: str, digest: str) -> None:
        self._local_proofs[api_key_id] = (digest, self._clock() + self._cache_ms / 1000)
        self._local_proofs.move_to_end(api_key_id)
        while len(self._local_proofs) > 10_000:
            self._local_proofs.popitem(last=False)

    def _refuse_key(self, event: AuditEventType, why: str) -> NoReturn:
        self._audit.emit(
            event,
            risk=RiskLevel.LOW if event is AuditEventType.API_KEY_EXPIRED else RiskLevel.MEDIUM,
            outcome="refused",
            reason=why,
        )
        raise Unauthenticated(
            reason="API_KEY_EXPIRED"
            if event is AuditEventType.API_KEY_EXPIRED
            else "API_KEY_INVALID",
            detail=why,
        )

    def _touch_later(self, api_key_id: str) -> None:
        # last_used_at is informative: written off the request path, at most
        # about once a minute per key (the gate's touch marker throttles it).
        task = asyncio.create_task(self._keys.touch(api_key_id, datetime.now(UTC)))
        self._background.add(task)
        task.add_done_callback(self._touched)

    def _touched(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("last_used_at not recorded: %s", task.exception())
