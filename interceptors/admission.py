"""Admission link: the cheapest refusal, before authentication or any other work (C18).

It reads only the call's policy (``never_shed``) and, for graph RPCs, the
``graph_id`` field of the already decoded request, then asks the controller,
whose decision costs a few comparisons: pressure is sampled in the
background. Refusals are UNAVAILABLE with a retry hint (``RetryInfo`` and
``retry-after``). Health checks are outside this link's selector.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.context import current_call
from graphgate.server.services.admission import AdmissionController

_admitted: ContextVar[tuple[bool, str | None]] = ContextVar(
    "graphgate_admitted", default=(False, None)
)


class AdmissionInterceptor(Link):
    """Admits or sheds each call; counts admitted calls until they end."""

    def __init__(
        self, *, controller: AdmissionController, selector: Selector = contract_methods
    ) -> None:
        super().__init__(selector=selector)
        self._controller = controller

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        method = current_call().method
        never_shed = bool(method is not None and method.policy.never_shed)
        graph_id = None
        if method is not None and method.needs_graph:
            graph_id = getattr(request, "graph_id", None) or None
        self._controller.admit(graph_id, never_shed=never_shed)
        _admitted.set((True, graph_id))

    async def exit(self, context: Context, error: BaseException | None) -> None:
        admitted, graph_id = _admitted.get()
        if admitted:
            _admitted.set((False, None))
            self._controller.release(graph_id)
