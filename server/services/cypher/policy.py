"""The per-role allow-list over query classes (C15), and graph roles.

=========  ====  =====  =====  ==========  ====  =====
role       READ  WRITE  MIXED  SCHEMA_DDL  BULK  ADMIN
=========  ====  =====  =====  ==========  ====  =====
viewer     yes   no     no     no          no    no
member     yes   yes    yes    no          no    no
admin      yes   yes    yes    schema RPC  no    no
=========  ====  =====  =====  ==========  ====  =====

Security: BULK and ADMIN are refused for every caller (data enters through
uploads only) and audited as ``injection_attempt``; a class beyond the
caller's role is audited as ``privilege_escalation_attempt``. Roles are
checked before parameters, so a refused statement never reveals which
parameters it would have needed.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Final

from graphgate.server.errors import QueryRefused

from .cursor import safe_name
from .model import Analysis, QueryClass


class Role(enum.Enum):
    """A caller's role on one graph (C9)."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


_DATA: Final = frozenset({QueryClass.READ, QueryClass.WRITE, QueryClass.MIXED})
_ALLOWED: Final = {
    Role.VIEWER: frozenset({QueryClass.READ}),
    Role.MEMBER: _DATA,
    Role.ADMIN: _DATA,
}
_FORBIDDEN: Final = frozenset({QueryClass.BULK, QueryClass.ADMIN})


def authorize(
    analysis: Analysis,
    role: Role,
    *,
    supplied_parameters: Collection[str],
    allow_schema_ddl: bool = False,
) -> None:
    """Allow ``analysis`` for ``role`` or raise :class:`QueryRefused`.

    ``allow_schema_ddl`` is True only on the schema RPCs, where admins may
    run SCHEMA_DDL; ``ExecuteQuery`` leaves it False. Every ``$name`` the
    query references must be in ``supplied_parameters``. Reasons:
    ``QUERY_CLASS_FORBIDDEN`` (BULK/ADMIN, anyone), ``QUERY_CLASS_NOT_PERMITTED``
    (beyond the role, or schema change outside the schema RPCs) and
    ``MISSING_PARAMETER``.
    """
    query_class = analysis.query_class
    metadata = {"query_class": query_class.value, "role": role.value}
    explained = "; ".join(analysis.reasons)
    if query_class in _FORBIDDEN:
        raise QueryRefused(
            public_message=f"query refused: {query_class.value} statements are not allowed "
            f"({explained})",
            reason="QUERY_CLASS_FORBIDDEN",
            detail=explained,
            metadata=metadata,
            audit_event="injection_attempt",
        )
    allowed = query_class in _ALLOWED[role] or (
        query_class is QueryClass.SCHEMA_DDL and role is Role.ADMIN and allow_schema_ddl
    )
    if not allowed:
        where = " outside the schema operations" if role is Role.ADMIN else ""
        raise QueryRefused(
            public_message=f"query refused: role {role.value} may not run "
            f"{query_class.value} statements{where} ({explained})",
            reason="QUERY_CLASS_NOT_PERMITTED",
            detail=explained,
            metadata=metadata,
            audit_event="privilege_escalation_attempt",
        )
    missing = analysis.parameters.difference(supplied_parameters)
    if missing:
        names = ", ".join(f"${safe_name(name)}" for name in sorted(missing)[:10])
        raise QueryRefused(
            public_message=f"query refused: missing parameter(s) {names}",
            reason="MISSING_PARAMETER",
            detail=names,
            metadata={**metadata, "missing_count": str(len(missing))},
            audit_event="injection_attempt",
        )
