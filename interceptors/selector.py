"""Selectors decide which methods a chain link applies to.

Modelled on go-grpc-middleware's ``selector``: a link is configured with a
predicate over the full method name instead of carrying lists of method names.
The policy of each RPC still comes from the contract (``graphgate.v1.policy``).
"""

from __future__ import annotations

from collections.abc import Callable

from graphgate.server.contract import is_infrastructure

#: A predicate over the full method name (``/package.Service/Method``).
Selector = Callable[[str], bool]


def every_method(full_method: str) -> bool:
    """Apply to every call, health checks and reflection included."""
    return True


def contract_methods(full_method: str) -> bool:
    """Apply to graphgate's own RPCs, not to health checks or reflection."""
    return not is_infrastructure(full_method)
