"""Graph roles: their names (as stored), contract values and order.

Roles are ordered: an admin may do everything a member may, and a member
everything a viewer may (C9).
"""

from __future__ import annotations

from graphgate.v1 import common_pb2

#: Stored role name -> ``graphgate.v1.Role`` value.
ROLE_VALUES: dict[str, common_pb2.Role.ValueType] = {
    "admin": common_pb2.ROLE_ADMIN,
    "member": common_pb2.ROLE_MEMBER,
    "viewer": common_pb2.ROLE_VIEWER,
}
#: Stored role name -> strength (higher may do more).
ROLE_RANK = {"admin": 3, "member": 2, "viewer": 1}
_NAMES: dict[int, str] = {value: name for name, value in ROLE_VALUES.items()}


def role_name(role_value: int) -> str:
    """The stored name of a ``graphgate.v1.Role`` value (KeyError for UNSPECIFIED)."""
    return _NAMES[role_value]
