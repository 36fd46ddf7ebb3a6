"""Authorization link: the RPC's graph role against the caller's membership (C9).

For RPCs whose policy is a graph role, the request's ``graph_id`` is looked
up on every call (one indexed PostgreSQL query; no decision is cached, so a
membership change takes effect on the next call). A caller who is not a
member gets exactly the answer an unknown graph gets (NOT_FOUND), so graph
ids of other tenants reveal nothing; a member with too small a role gets
PERMISSION_DENIED, audited as a privilege escalation attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import current_call
from graphgate.server.errors import NotFound, PermissionDenied
from graphgate.server.roles import ROLE_RANK
from graphgate.v1 import policy_pb2

_NEEDED = {
    policy_pb2.ACCESS_GRAPH_VIEWER: 1,
    policy_pb2.ACCESS_GRAPH_MEMBER: 2,
    policy_pb2.ACCESS_GRAPH_ADMIN: 3,
}

#: Looks up the caller's role on a graph: (graph_id, user_id) -> role name or None.
RoleLookup = Callable[[str, str], Awaitable[str | None]]


class AuthorizationInterceptor(Link):
    """Refuses graph RPCs the caller's role does not allow."""

    def __init__(
        self, *, role_of: RoleLookup, audit_log: AuditLog, selector: Selector = contract_methods
    ) -> None:
        super().__init__(selector=selector)
        self._role_of = role_of
        self._audit = audit_log

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        call = current_call()
        method = call.method
        if method is None or not method.needs_graph:
            return
        graph_id = str(getattr(request, "graph_id", ""))
        principal = call.principal
        if principal is None or not graph_id:
            raise NotFound(public_message="graph not found", reason="GRAPH_NOT_FOUND")
        role = await self._role_of(graph_id, principal.user_id)
        if role is None:
            raise NotFound(public_message="graph not found", reason="GRAPH_NOT_FOUND")
        call.graph_id = graph_id
        call.graph_role = role
        if ROLE_RANK[role] < _NEEDED[method.access]:
            self._audit.emit(
                AuditEventType.PRIVILEGE_ESCALATION_ATTEMPT,
                risk=RiskLevel.HIGH,
                outcome="refused",
                reason=f"{role} called {method.name}",
            )
            raise PermissionDenied(
                public_message=f"your role on this graph ({role}) does not allow this",
                reason="ROLE_TOO_LOW",
            )
