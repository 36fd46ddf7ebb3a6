"""AuthService servicer: contract messages in and out, the domain does the rest."""

from __future__ import annotations

from typing import Any

from graphgate.server.context import current_call, current_principal
from graphgate.server.handlers import convert
from graphgate.server.services.accounts import AccountService
from graphgate.server.services.fingerprint import hints_from_metadata
from graphgate.v1 import auth_pb2


class AuthServicer:
    """Serves graphgate.v1.AuthService."""

    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Any
    ) -> auth_pb2.RegisterResponse:
        signed_in = await self._accounts.register(
            email=request.email,
            password=request.password,
            name=request.name,
            captcha_token=request.captcha_token,
            ip=current_call().client_ip,
            hints=hints_from_metadata(context.invocation_metadata()),
        )
        return auth_pb2.RegisterResponse(
            user=convert.user(signed_in.user), session=convert.session(signed_in.session)
        )

    async def Login(self, request: auth_pb2.LoginRequest, context: Any) -> auth_pb2.LoginResponse:
        signed_in = await self._accounts.login(
            email=request.email,
            password=request.password,
            captcha_token=request.captcha_token,
            ip=current_call().client_ip,
            hints=hints_from_metadata(context.invocation_metadata()),
        )
        return auth_pb2.LoginResponse(
            user=convert.user(signed_in.user), session=convert.session(signed_in.session)
        )

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: Any
    ) -> auth_pb2.RefreshResponse:
        issued = await self._accounts.refresh(current_principal())
        return auth_pb2.RefreshResponse(session=convert.session(issued))

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Any
    ) -> auth_pb2.LogoutResponse:
        await self._accounts.logout(current_principal())
        return auth_pb2.LogoutResponse()

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Any
    ) -> auth_pb2.GetCurrentUserResponse:
        user = await self._accounts.current_user(current_principal())
        return auth_pb2.GetCurrentUserResponse(user=convert.user(user))

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Any
    ) -> auth_pb2.ChangePasswordResponse:
        issued = await self._accounts.change_password(
            current_principal(),
            current=request.current_password,
            new=request.new_password,
            ip=current_call().client_ip,
            hints=hints_from_metadata(context.invocation_metadata()),
        )
        return auth_pb2.ChangePasswordResponse(session=convert.session(issued))

    async def GetPasswordPolicy(
        self, request: auth_pb2.GetPasswordPolicyRequest, context: Any
    ) -> auth_pb2.GetPasswordPolicyResponse:
        policy = self._accounts.password_policy
        return auth_pb2.GetPasswordPolicyResponse(
            policy=auth_pb2.PasswordPolicy(
                min_length=policy.min_length,
                max_length=policy.max_length,
                require_upper=policy.require_upper,
                require_lower=policy.require_lower,
                require_digit=policy.require_digit,
                require_special=policy.require_special,
                min_distinct_characters=policy.min_distinct,
                min_score=policy.min_score,
            )
        )

    async def CheckPassword(
        self, request: auth_pb2.CheckPasswordRequest, context: Any
    ) -> auth_pb2.CheckPasswordResponse:
        verdict = await self._accounts.check_password(
            request.password, email=request.email, name=request.name
        )
        return auth_pb2.CheckPasswordResponse(
            score=verdict.score, acceptable=verdict.acceptable, problems=list(verdict.problems)
        )
