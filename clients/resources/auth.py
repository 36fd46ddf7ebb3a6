"""``client.auth``: sign-up, sign-in, sessions and passwords (AuthService).

:meth:`Auth.register`, :meth:`Auth.login` and :meth:`Auth.change_password`
make the client use the session they return (the password stays in memory
only, to sign in again when a session cannot be refreshed); :meth:`Auth.logout`
ends it and forgets the credentials.
"""

from __future__ import annotations

from graphgate.clients.auth import SessionCredentials
from graphgate.clients.contract import rpc
from graphgate.clients.models import PasswordCheck, PasswordPolicy, Session, SignedIn, User
from graphgate.clients.transport import AsyncTransport, Op, Transport
from graphgate.v1 import auth_pb2


def _signed_in(reply: auth_pb2.RegisterResponse | auth_pb2.LoginResponse) -> SignedIn:
    return SignedIn(User.from_proto(reply.user), Session.from_proto(reply.session))


def _register(email: str, password: str, name: str, captcha_token: str) -> Op[SignedIn]:
    request = auth_pb2.RegisterRequest(
        email=email, password=password, name=name, captcha_token=captcha_token
    )
    return Op(rpc("AuthService", "Register"), request, _signed_in)


def _login(email: str, password: str, captcha_token: str) -> Op[SignedIn]:
    request = auth_pb2.LoginRequest(email=email, password=password, captcha_token=captcha_token)
    return Op(rpc("AuthService", "Login"), request, _signed_in)


def _me() -> Op[User]:
    return Op(
        rpc("AuthService", "GetCurrentUser"),
        auth_pb2.GetCurrentUserRequest(),
        lambda r: User.from_proto(r.user),
    )


def _logout() -> Op[None]:
    return Op(rpc("AuthService", "Logout"), auth_pb2.LogoutRequest(), lambda _: None)


def _change_password(current: str, new: str) -> Op[Session]:
    request = auth_pb2.ChangePasswordRequest(current_password=current, new_password=new)
    return Op(
        rpc("AuthService", "ChangePassword"), request, lambda r: Session.from_proto(r.session)
    )


def _policy() -> Op[PasswordPolicy]:
    def convert(reply: auth_pb2.GetPasswordPolicyResponse) -> PasswordPolicy:
        p = reply.policy
        return PasswordPolicy(
            p.min_length,
            p.max_length,
            p.require_upper,
            p.require_lower,
            p.require_digit,
            p.require_special,
            p.min_distinct_characters,
            p.min_score,
        )

    return Op(rpc("AuthService", "GetPasswordPolicy"), auth_pb2.GetPasswordPolicyRequest(), convert)


def _check(password: str, email: str, name: str) -> Op[PasswordCheck]:
    return Op(
        rpc("AuthService", "CheckPassword"),
        auth_pb2.CheckPasswordRequest(password=password, email=email, name=name),
        lambda r: PasswordCheck(r.score, r.acceptable, list(r.problems)),
    )


def _adopt(
    transport: Transport | AsyncTransport, session: Session, email: str | None, password: str | None
) -> None:
    creds = SessionCredentials(email=email, password=password)
    creds.accept(session)
    transport.credentials = creds


class Auth:
    """Accounts and sessions."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def register(
        self, email: str, password: str, name: str, *, captcha_token: str = ""
    ) -> SignedIn:
        """Create an account and sign this client in with it.

        Raises :class:`~graphgate.clients.InvalidArgument` for a weak password
        (reason ``WEAK_PASSWORD``) and :class:`~graphgate.clients.AlreadyExists`
        for a taken email.
        """
        signed_in = self._t.run(_register(email, password, name, captcha_token))
        _adopt(self._t, signed_in.session, email, password)
        return signed_in

    def login(self, email: str, password: str, *, captcha_token: str = "") -> SignedIn:
        """Sign in; the client then uses this session and renews it by itself."""
        signed_in = self._t.run(_login(email, password, captcha_token))
        _adopt(self._t, signed_in.session, email, password)
        return signed_in

    def me(self) -> User:
        """The signed-in user (or the owner of the API key)."""
        return self._t.run(_me())

    def logout(self) -> None:
        """Revoke the current session; the client forgets its credentials."""
        self._t.run(_logout())
        creds = self._t.credentials
        if isinstance(creds, SessionCredentials):
            creds.clear()
        self._t.credentials = None

    def change_password(self, current_password: str, new_password: str) -> Session:
        """Set a new password; every other session ends, this client keeps a fresh one."""
        session = self._t.run(_change_password(current_password, new_password))
        creds = self._t.credentials
        email = creds.email if isinstance(creds, SessionCredentials) else None
        _adopt(self._t, session, email, new_password if email else None)
        return session

    def password_policy(self) -> PasswordPolicy:
        """The rules a new password must meet (no sign-in needed)."""
        return self._t.run(_policy())

    def check_password(self, password: str, *, email: str = "", name: str = "") -> PasswordCheck:
        """Score a candidate password without storing it (no sign-in needed)."""
        return self._t.run(_check(password, email, name))


class AsyncAuth:
    """Accounts and sessions (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def register(
        self, email: str, password: str, name: str, *, captcha_token: str = ""
    ) -> SignedIn:
        """Create an account and sign this client in with it."""
        signed_in = await self._t.run(_register(email, password, name, captcha_token))
        _adopt(self._t, signed_in.session, email, password)
        return signed_in

    async def login(self, email: str, password: str, *, captcha_token: str = "") -> SignedIn:
        """Sign in; the client then uses this session and renews it by itself."""
        signed_in = await self._t.run(_login(email, password, captcha_token))
        _adopt(self._t, signed_in.session, email, password)
        return signed_in

    async def me(self) -> User:
        """The signed-in user (or the owner of the API key)."""
        return await self._t.run(_me())

    async def logout(self) -> None:
        """Revoke the current session; the client forgets its credentials."""
        await self._t.run(_logout())
        creds = self._t.credentials
        if isinstance(creds, SessionCredentials):
            creds.clear()
        self._t.credentials = None

    async def change_password(self, current_password: str, new_password: str) -> Session:
        """Set a new password; every other session ends, this client keeps a fresh one."""
        session = await self._t.run(_change_password(current_password, new_password))
        creds = self._t.credentials
        email = creds.email if isinstance(creds, SessionCredentials) else None
        _adopt(self._t, session, email, new_password if email else None)
        return session

    async def password_policy(self) -> PasswordPolicy:
        """The rules a new password must meet (no sign-in needed)."""
        return await self._t.run(_policy())

    async def check_password(
        self, password: str, *, email: str = "", name: str = ""
    ) -> PasswordCheck:
        """Score a candidate password without storing it (no sign-in needed)."""
        return await self._t.run(_check(password, email, name))
