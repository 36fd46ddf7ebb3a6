"""The REST surface, read from the contract: one :class:`HttpBinding` per rule.

Every RPC of :func:`graphgate.server.contract.methods` with a
``google.api.http`` option becomes a binding (plus one per
``additional_bindings`` entry). Nothing here names an RPC: a new RPC with an
HTTP rule is served, documented and tested without touching the sidecar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from google.api import http_pb2
from google.protobuf import descriptor

from graphgate.clients.gateway.templates import PathTemplate, TemplateError, parse_template
from graphgate.server.contract import MethodInfo, methods

_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One HTTP method and path template bound to one RPC.

    ``body`` is the rule's body: ``"*"`` (the whole request except path
    variables), a field name, or ``""`` (no body; the remaining fields come
    from the query string). ``response_body`` names the response field sent
    instead of the whole response (``""`` for the whole response).
    """

    http_method: str
    template: PathTemplate
    body: str
    response_body: str
    rpc: MethodInfo

    @property
    def request(self) -> descriptor.Descriptor:
        """The request message's descriptor."""
        return cast(descriptor.Descriptor, self.rpc.request_type.DESCRIPTOR)

    @property
    def response(self) -> descriptor.Descriptor:
        """The response message's descriptor."""
        return cast(descriptor.Descriptor, self.rpc.response_type.DESCRIPTOR)

    @property
    def streaming(self) -> bool:
        """True for server-streaming RPCs (NDJSON or server-sent events)."""
        return self.rpc.server_streaming


def _pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind in _VERBS:
        return kind.upper(), str(getattr(rule, kind))
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    raise TemplateError("an http rule without a pattern")


def _rules(rule: http_pb2.HttpRule) -> Iterable[http_pb2.HttpRule]:
    yield rule
    # Nested additional bindings are not allowed by the spec; one level only.
    yield from rule.additional_bindings


def bindings_for(infos: Iterable[MethodInfo]) -> list[HttpBinding]:
    """The bindings of ``infos`` in contract order; raises :class:`TemplateError`
    (naming the RPC) when a rule cannot be served, so a bad contract fails at start."""
    found: list[HttpBinding] = []
    for info in infos:
        if info.http_rule is None:
            continue
        for rule in _rules(info.http_rule):
            try:
                http_method, path = _pattern(rule)
                template = parse_template(path)
            except TemplateError as exc:
                raise TemplateError(f"{info.full_method}: {exc}") from exc
            binding = HttpBinding(http_method, template, rule.body, rule.response_body, info)
            _check_fields(binding)
            found.append(binding)
    return found


def contract_bindings() -> list[HttpBinding]:
    """The bindings of every RPC of the graphgate contract."""
    return bindings_for(methods().values())


def _check_fields(binding: HttpBinding) -> None:
    request = binding.request
    for field_path in binding.template.variables:
        current: descriptor.Descriptor | None = request
        for part in field_path.split("."):
            field = current.fields_by_name.get(part) if current is not None else None
            if field is None:
                raise TemplateError(f"{binding.rpc.full_method}: no field {field_path!r}")
            current = field.message_type
    if binding.body not in ("", "*") and binding.body not in request.fields_by_name:
        raise TemplateError(f"{binding.rpc.full_method}: no body field {binding.body!r}")
    response = binding.response
    if binding.response_body and binding.response_body not in response.fields_by_name:
        raise TemplateError(f"{binding.rpc.full_method}: no field {binding.response_body!r}")


def by_template(bindings: Iterable[HttpBinding]) -> Mapping[str, dict[str, HttpBinding]]:
    """Bindings grouped by path template source, then by HTTP method.

    Raises :class:`TemplateError` when two RPCs claim one method and path.
    """
    grouped: dict[str, dict[str, HttpBinding]] = {}
    for binding in bindings:
        same_path = grouped.setdefault(binding.template.source, {})
        if binding.http_method in same_path:
            other = same_path[binding.http_method].rpc.full_method
            raise TemplateError(
                f"{binding.rpc.full_method} and {other} both bind "
                f"{binding.http_method} {binding.template.source}"
            )
        same_path[binding.http_method] = binding
    return grouped
