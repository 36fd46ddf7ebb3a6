"""Authentication link: a bearer JWT or an ``x-api-key`` becomes a principal (C1, C5).

Public RPCs (per the ``graphgate.v1.policy`` option) pass without
credentials. Otherwise the caller must present ``authorization: Bearer <jwt>``
or ``x-api-key: <key>``; when both are present the bearer decides and a bad
bearer is refused, never retried as the key. The authenticator's gate counts
the call's rate limit in the same Valkey round trip (DESIGN.md: one trip).

Security: the refusal message never says which part of a credential was
wrong; the specific reason goes to the audit log.
"""

from __future__ import annotations

from typing import Any

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.context import current_call
from graphgate.server.errors import PermissionDenied, Unauthenticated
from graphgate.server.services.authentication import Authenticator
from graphgate.server.services.operator_access import OperatorAccess
from graphgate.server.services.rate_limits import BY_ADDRESS, RateLimitPolicy
from graphgate.v1 import policy_pb2


def credentials(metadata: Any) -> tuple[str | None, str | None]:
    """The bearer token and the API key in a call's metadata (either may be None)."""
    bearer: str | None = None
    api_key: str | None = None
    for key, value in metadata or ():
        if not isinstance(value, str):
            continue
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            # A malformed authorization header is a bad bearer, not a missing one.
            bearer = token.strip() if scheme.lower() == "bearer" else ""
        elif key == "x-api-key":
            api_key = value.strip()
    return bearer, api_key


class AuthenticationInterceptor(Link):
    """Resolves the caller of every non-public RPC, or refuses the call."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        operators: OperatorAccess,
        rate_policy: RateLimitPolicy | None,
        selector: Selector = contract_methods,
    ) -> None:
        super().__init__(selector=selector)
        self._authenticator = authenticator
        self._operators = operators
        self._rate_policy = rate_policy

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        call = current_call()
        method = call.method
        if method is None or method.access == policy_pb2.ACCESS_UNSPECIFIED:
            raise PermissionDenied(reason="NO_POLICY", detail=f"{full_method} has no policy")
        if method.access == policy_pb2.ACCESS_PUBLIC:
            return
        bearer, api_key = credentials(context.invocation_metadata())
        if method.access == policy_pb2.ACCESS_OPERATOR:
            call.principal = self._operators.authenticate(api_key)
            return
        rate = None
        if self._rate_policy is not None:
            category = self._rate_policy.category(method.policy.rate_limit)
            if category not in BY_ADDRESS:
                rate = self._rate_policy.spec(category)
        if bearer is not None:
            if not bearer:
                raise Unauthenticated(reason="TOKEN_INVALID", detail="malformed authorization")
            result = await self._authenticator.authenticate_bearer(bearer, rate)
        elif api_key is not None:
            result = await self._authenticator.authenticate_api_key(api_key, rate)
        else:
            raise Unauthenticated(reason="CREDENTIALS_MISSING")
        call.principal = result.principal
        call.rate_decision = result.rate
