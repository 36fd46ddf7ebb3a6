"""Accounts: registration, sign-in, sessions and passwords (C1-C3, C6-C8).

Security: sign-in answers the same, in about the same time, for an unknown
email and a wrong password (a dummy bcrypt runs for unknown emails). Every
failure is counted by the brute-force guard before anything is said. Password
hashing runs off the event loop with bounded concurrency; when more sign-ins
arrive than the cores can hash, the excess is refused at once (OVERLOADED).
Changing a password or deactivating an account ends every earlier session on
every replica through the user's state in Valkey.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal, PrincipalKind
from graphgate.server.errors import (
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    StoreUnavailable,
    Unauthenticated,
)
from graphgate.server.services.brute_force import BruteForceGuard, ThreatLevel
from graphgate.server.services.captcha import CaptchaPolicy, TurnstileVerifier, enforce_captcha
from graphgate.server.services.fingerprint import fingerprint, is_browser
from graphgate.server.services.passwords import (
    PasswordCheck,
    PasswordHasher,
    PasswordPolicy,
    check_password,
)
from graphgate.server.services.tokens import IssuedToken, TokenService
from graphgate.server.stores.api_keys import ApiKeyStore
from graphgate.server.stores.gate import GateStore
from graphgate.server.stores.users import UserRecord, UserStore

TIERS = ("free", "pro", "enterprise")
_BAD_CREDENTIALS = "invalid email or password"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """An account and a fresh session for it."""

    user: UserRecord
    session: IssuedToken


class AccountService:
    """Domain logic of AuthService and of the operator's account commands."""

    def __init__(
        self,
        *,
        users: UserStore,
        keys: ApiKeyStore,
        gate: GateStore,
        tokens: TokenService,
        hasher: PasswordHasher,
        guard: BruteForceGuard,
        captcha_policy: CaptchaPolicy,
        captcha_verifier: TurnstileVerifier | None,
        policy: PasswordPolicy,
        audit: AuditLog,
        refresh_grace_seconds: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._users = users
        self._keys = keys
        self._gate = gate
        self._tokens = tokens
        self._hasher = hasher
        self._guard = guard
        self._captcha_policy = captcha_policy
        self._captcha = captcha_verifier
        self._policy = policy
        self._audit = audit
        self._grace_ms = refresh_grace_seconds * 1000
        self._clock = clock

    @property
    def password_policy(self) -> PasswordPolicy:
        """The policy new passwords must meet."""
        return self._policy

    async def check_password(self, password: str, *, email: str, name: str) -> PasswordCheck:
        """Score a candidate (zxcvbn runs in a thread: it costs up to ~50 ms)."""
        return await asyncio.to_thread(
            check_password, password, policy=self._policy, email=email, name=name
        )

    async def _require_strong(self, password: str, *, email: str, name: str, field: str) -> None:
        verdict = await self.check_password(password, email=email, name=name)
        if not verdict.acceptable:
            raise InvalidArgument(
                public_message="password does not meet the password policy",
                reason="WEAK_PASSWORD",
                violations=[FieldViolation(field, p) for p in verdict.problems],
            )

    async def _require_captcha(self, token: str, ip: str, threat: ThreatLevel) -> None:
        try:
            await enforce_captcha(
                self._captcha_policy,
                self._captcha,
                token=token,
                remote_ip=ip,
                threat_level=threat,
            )
        except PermissionDenied:
            self._audit.emit(
                AuditEventType.SUSPICIOUS_ACTIVITY,
                risk=RiskLevel.MEDIUM,
                outcome="refused",
                reason="CAPTCHA_FAILED",
            )
            raise

    def _issue(self, user: UserRecord, hints: Mapping[str, str]) -> IssuedToken:
        bound = fingerprint(hints) if is_browser(hints) else None
        return self._tokens.issue(user.user_id, fingerprint=bound)

    async def _publish_state(self, user: UserRecord, *, required: bool = True) -> None:
        """Share the user's state with every replica through Valkey.

        Sign-in only warms the cache, so it goes on without Valkey
        (``required=False``); a change that ends sessions must reach Valkey or
        fail, so that a stale "active" entry can never outlive it.
        """
        try:
            await self._gate.put_user_state(
                user.user_id,
                active=user.active,
                valid_after_ms=int(user.tokens_valid_after.timestamp() * 1000),
                tier=user.tier,
            )
        except StoreUnavailable:
            if required:
                raise

    async def register(
        self,
        *,
        email: str,
        password: str,
        name: str,
        captcha_token: str,
        ip: str,
        hints: Mapping[str, str],
    ) -> SignedIn:
        """Create an account and sign it in."""
        # Sign-up always needs a token when CAPTCHA is on, whatever the login mode.
        await self._require_captcha(captcha_token, ip, ThreatLevel.CRITICAL)
        await self._require_strong(password, email=email, name=name, field="password")
        user = await self._users.create(
            email=email, name=name, password_hash=await self._hasher.hash(password)
        )
        session = self._issue(user, hints)
        await self._publish_state(user, required=False)
        self._audit.emit(
            AuditEventType.USER_REGISTERED,
            risk=RiskLevel.LOW,
            outcome="ok",
            subject_user_id=user.user_id,
        )
        return SignedIn(user=user, session=session)

    async def login(
        self,
        *,
        email: str,
        password: str,
        captcha_token: str,
        ip: str,
        hints: Mapping[str, str],
    ) -> SignedIn:
        """Sign in; failures are counted and answered identically."""
        self._hasher.ensure_capacity()
        verdict = await self._guard.enforce(ip, email)
        await self._require_captcha(captcha_token, ip, verdict.threat_level)
        user = await self._users.by_email(email)
        if user is None:
            await self._hasher.verify_dummy(password)
            ok = False
        else:
            ok = await self._hasher.verify(password, user.password_hash) and user.active
        if not ok or user is None:
            after = await self._guard.record_failure(ip, email)
            self._audit.emit(
                AuditEventType.AUTH_FAILURE,
                risk=RiskLevel.HIGH if after.threat_level >= ThreatLevel.HIGH else RiskLevel.MEDIUM,
                outcome="refused",
                reason="INVALID_CREDENTIALS",
                threat_level=after.threat_level.name,
            )
            raise Unauthenticated(public_message=_BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        await self._guard.record_success(ip, email)
        session = self._issue(user, hints)
        await self._publish_state(user, required=False)
        self._audit.emit(
            AuditEventType.AUTH_SUCCESS,
            risk=RiskLevel.LOW,
            outcome="ok",
            subject_user_id=user.user_id,
        )
        return SignedIn(user=user, session=session)

    @staticmethod
    def _session_of(principal: Principal) -> tuple[str, float]:
        if principal.kind is not PrincipalKind.USER or principal.token_id is None:
            raise PermissionDenied(
                public_message="this call needs a signed-in session, not an API key",
                reason="SESSION_REQUIRED",
            )
        return principal.token_id, principal.token_expires_at or 0.0

    async def refresh(self, principal: Principal) -> IssuedToken:
        """A new token; the caller's keeps working for the grace period only (C3)."""
        token_id, expires_at = self._session_of(principal)
        now_ms = int(self._clock() * 1000)
        remaining_ms = int(expires_at * 1000) - now_ms
        marked = await self._gate.mark_token(
            principal.user_id, token_id, f"refreshed:{now_ms + self._grace_ms}", remaining_ms
        )
        if not marked:
            self._audit.emit(
                AuditEventType.TOKEN_REUSED,
                risk=RiskLevel.HIGH,
                outcome="refused",
                reason="token refreshed twice",
            )
            raise Unauthenticated(reason="TOKEN_REVOKED")
        return self._tokens.issue(principal.user_id, fingerprint=principal.fingerprint)

    async def logout(self, principal: Principal) -> None:
        """Revoke the caller's token on every replica."""
        token_id, expires_at = self._session_of(principal)
        remaining_ms = int(expires_at * 1000) - int(self._clock() * 1000)
        await self._gate.revoke_token(principal.user_id, token_id, remaining_ms)
        self._audit.emit(AuditEventType.LOGOUT, risk=RiskLevel.LOW, outcome="ok")

    async def current_user(self, principal: Principal) -> UserRecord:
        """The caller's account."""
        user = await self._users.by_id(principal.user_id)
        if user is None or not user.active:
            raise Unauthenticated(reason="USER_INACTIVE")
        return user

    async def change_password(
        self,
        principal: Principal,
        *,
        current: str,
        new: str,
        ip: str,
        hints: Mapping[str, str],
    ) -> IssuedToken:
        """Set a new password; every earlier session of the user ends."""
        self._session_of(principal)
        user = await self.current_user(principal)
        await self._guard.enforce(ip, user.email)
        if not await self._hasher.verify(current, user.password_hash):
            await self._guard.record_failure(ip, user.email)
            raise PermissionDenied(
                public_message="current password is wrong", reason="WRONG_PASSWORD"
            )
        await self._require_strong(new, email=user.email, name=user.name, field="new_password")
        changed_at = datetime.fromtimestamp(self._clock(), UTC)
        await self._users.set_password(
            user.user_id, await self._hasher.hash(new), tokens_valid_after=changed_at
        )
        updated = await self.current_user(principal)
        await self._publish_state(updated)
        self._audit.emit(AuditEventType.PASSWORD_CHANGED, risk=RiskLevel.MEDIUM, outcome="ok")
        return self._tokens.issue(user.user_id, fingerprint=principal.fingerprint)

    async def set_active(self, email: str, active: bool) -> UserRecord:
        """(De)activate an account: its sessions and API keys end at once."""
        changed_at = datetime.fromtimestamp(self._clock(), UTC)
        user = await self._users.set_active(email, active, tokens_valid_after=changed_at)
        await self._publish_state(user)
        lookup_ids = await self._keys.live_lookup_ids(user.user_id)
        if active:
            await self._gate.restore_keys(lookup_ids)
        else:
            await self._gate.revoke_keys(lookup_ids)
        self._audit.emit(
            AuditEventType.USER_DEACTIVATED if not active else AuditEventType.AUTH_SUCCESS,
            risk=RiskLevel.MEDIUM,
            outcome="ok",
            reason="deactivated" if not active else "reactivated",
            subject_user_id=user.user_id,
        )
        return user

    async def unblock_address(self, ip: str) -> None:
        """Lift a brute-force block on a client address (operator)."""
        await self._guard.unblock(ip)
        self._audit.emit(
            AuditEventType.BRUTE_FORCE_BLOCK,
            risk=RiskLevel.MEDIUM,
            outcome="lifted",
            reason="operator unblock",
        )

    async def set_tier(self, email: str, tier: str) -> UserRecord:
        """Change an account's tier; its limits change on the next call."""
        if tier not in TIERS:
            raise InvalidArgument(
                public_message=f"tier must be one of {', '.join(TIERS)}",
                reason="UNKNOWN_TIER",
                violations=[FieldViolation("tier", "unknown tier")],
            )
        user = await self._users.set_tier(email, tier)
        await self._publish_state(user)
        await self._gate.drop_key_caches(await self._keys.live_lookup_ids(user.user_id))
        return user
