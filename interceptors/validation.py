"""Validation link: protovalidate on every request before a handler runs (C14).

The constraints live in the contract (``buf.validate`` options), so the REST
sidecar, the docs and every client language see the same rules. A violation
becomes INVALID_ARGUMENT with a ``BadRequest`` listing the fields; nothing of
the request reaches a handler.
"""

from __future__ import annotations

from typing import Any

import protovalidate
from google.protobuf.message import Message

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.errors import FieldViolation, InvalidArgument


def _field_path(violation: protovalidate.Violation) -> str:
    parts = []
    path = violation.proto.field
    for element in path.elements if path is not None else ():
        subscript = element.subscript
        if subscript is None:
            parts.append(element.field_name)
        elif subscript.field == "string_key":
            parts.append(f"{element.field_name}[{subscript.value!r}]")
        else:
            parts.append(f"{element.field_name}[{subscript.value}]")
    return ".".join(parts)


class ValidationInterceptor(Link):
    """Refuses requests that break their message's ``buf.validate`` rules."""

    def __init__(
        self,
        *,
        validator: protovalidate.Validator | None = None,
        selector: Selector = contract_methods,
    ) -> None:
        super().__init__(selector=selector)
        self._validator = validator or protovalidate.Validator()

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        if not isinstance(request, Message):
            return
        violations = self._validator.collect_violations(request)
        if violations:
            raise InvalidArgument(
                public_message="request has invalid fields",
                reason="INVALID_FIELDS",
                violations=[
                    FieldViolation(field=_field_path(v), description=v.proto.message)
                    for v in violations
                ],
            )
