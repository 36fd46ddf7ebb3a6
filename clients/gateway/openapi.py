"""The OpenAPI 3.1 document, generated from the contract at start.

Paths and methods come from the ``google.api.http`` rules, parameters from
the path templates and (for rules without a body) the remaining request
fields, bodies and responses from the messages (:mod:`.schemas`), prose from
the contract's comments (:mod:`.comments`), security from each RPC's
``graphgate.v1.policy``: public RPCs need nothing, operator RPCs the
operator key, every other RPC a bearer JWT or an API key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import descriptor

from graphgate.clients.gateway.bindings import HttpBinding
from graphgate.clients.gateway.encode import EVENT_STREAM, NDJSON
from graphgate.clients.gateway.openapi_shared import (
    API_KEY,
    BEARER,
    ERROR_SCHEMA,
    ERROR_STATUSES,
    OPERATOR,
    SECURED_STATUSES,
    SECURITY_SCHEMES,
    error_responses,
    error_schema,
    header_components,
    header_refs,
    healthz_operation,
)
from graphgate.clients.gateway.schemas import WELL_KNOWN, SchemaBuilder, ref
from graphgate.v1 import policy_pb2

_FD = descriptor.FieldDescriptor


def _security(binding: HttpBinding) -> list[dict[str, list[str]]]:
    access = binding.rpc.access
    if access == policy_pb2.ACCESS_PUBLIC:
        return []
    if access == policy_pb2.ACCESS_OPERATOR:
        return [{OPERATOR: []}]
    return [{BEARER: []}, {API_KEY: []}]


def _query_fields(
    message: descriptor.Descriptor, prefix: str, seen: frozenset[str]
) -> Iterable[tuple[str, _FD]]:
    for field in message.fields:
        name = prefix + field.json_name
        nested = field.message_type
        if nested is None or nested.full_name in WELL_KNOWN:
            if nested is None or not field.is_repeated:
                yield name, field
        elif not field.is_repeated and nested.full_name not in seen:
            yield from _query_fields(nested, name + ".", seen | {nested.full_name})


def _field(message: descriptor.Descriptor, name: str) -> _FD:
    return message.fields_by_name[name]


def _path_field(message: descriptor.Descriptor, field_path: str) -> _FD:
    """The field a (possibly dotted) path variable binds; checked at start."""
    first, *rest = field_path.split(".")
    field = _field(message, first)
    for part in rest:
        nested = field.message_type
        if nested is None:
            raise ValueError(f"{field_path} does not name a message field")
        field = _field(nested, part)
    return field


class OpenApiBuilder:
    """Builds the document for a set of bindings (see :func:`build_document`)."""

    def __init__(self, comments: Mapping[str, str]) -> None:
        self._comments = comments
        self._schemas = SchemaBuilder(comments)

    def _parameters(self, binding: HttpBinding) -> list[dict[str, Any]]:
        request = binding.request
        params = []
        for field_path in binding.template.variables:
            field = _path_field(request, field_path)
            param = {"name": field_path, "in": "path", "required": True}
            params.append({**param, "schema": self._schemas.field_schema(field)})
        if binding.body:
            return params
        bound = set(binding.template.variables)
        for name, field in _query_fields(request, "", frozenset({request.full_name})):
            if field.name in bound or name in bound:
                continue
            schema = self._schemas.field_schema(field)
            params.append({"name": name, "in": "query", "schema": schema})
        return params

    def _request_body(self, binding: HttpBinding) -> dict[str, Any] | None:
        request = binding.request
        if binding.body == "*":
            omit = {p.split(".", 1)[0] for p in binding.template.variables}
            # The whole message is a component; without its path fields, inline.
            schema = (
                self._schemas.object_schema(request, omit=omit)
                if omit
                else self._schemas.message_ref(request)
            )
        elif binding.body:
            schema = self._schemas.field_schema(_field(request, binding.body))
        else:
            return None
        return {"required": False, "content": {"application/json": {"schema": schema}}}

    def _success(self, binding: HttpBinding) -> dict[str, Any]:
        response = binding.response
        if binding.response_body:
            schema = self._schemas.field_schema(_field(response, binding.response_body))
        else:
            schema = self._schemas.message_ref(response)
        if binding.streaming:
            frame = {
                "type": "object",
                "description": "One frame: NDJSON is one per line, SSE one per event.",
                "properties": {"result": schema, "error": ref(ERROR_SCHEMA)},
                "additionalProperties": False,
            }
            content = {
                NDJSON: {"schema": frame},
                EVENT_STREAM: {"schema": {"type": "string"}},
            }
        else:
            content = {"application/json": {"schema": schema}}
        return {"description": "OK", "headers": header_refs(), "content": content}

    def operation(self, binding: HttpBinding, operation_id: str) -> dict[str, Any]:
        """The OpenAPI operation object of one binding."""
        rpc = binding.rpc
        text = self._comments.get(f"{rpc.service}.{rpc.name}", "")
        secured = rpc.access != policy_pb2.ACCESS_PUBLIC
        statuses = [*ERROR_STATUSES, *(SECURED_STATUSES if secured else ())]
        responses: dict[str, Any] = {"200": self._success(binding)}
        responses.update({str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses})
        responses["default"] = {"$ref": "#/components/responses/E500"}
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "tags": [rpc.service.rsplit(".", 1)[-1]],
            "summary": text.split(". ", 1)[0].rstrip(".") or rpc.name,
            "description": text,
            "parameters": self._parameters(binding),
            "responses": responses,
            "security": _security(binding),
            "x-grpc-method": rpc.full_method,
            "x-graphgate-policy": {
                "access": policy_pb2.Access.Name(rpc.policy.access),
                "rateLimit": policy_pb2.RateLimitCategory.Name(rpc.policy.rate_limit),
                "writes": rpc.policy.writes,
            },
        }
        body = self._request_body(binding)
        if body is not None:
            operation["requestBody"] = body
        return operation

    def document(self, bindings: Iterable[HttpBinding], *, version: str) -> dict[str, Any]:
        """The whole OpenAPI 3.1 document."""
        paths: dict[str, dict[str, Any]] = {}
        tags: dict[str, str] = {}
        used: dict[str, int] = {}
        for binding in bindings:
            rpc = binding.rpc
            base = f"{rpc.service.rsplit('.', 1)[-1]}_{rpc.name}"
            used[base] = used.get(base, 0) + 1
            operation_id = base if used[base] == 1 else f"{base}_{used[base]}"
            path = paths.setdefault(binding.template.openapi_path, {})
            path[binding.http_method.lower()] = self.operation(binding, operation_id)
            tags.setdefault(rpc.service.rsplit(".", 1)[-1], self._comments.get(rpc.service, ""))
        paths["/healthz"] = {"get": healthz_operation()}
        components = dict(sorted(self._schemas.components.items()))
        components[ERROR_SCHEMA] = error_schema()
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "graphgate",
                "version": version,
                "description": "REST/JSON for graphgate's gRPC contract (proto3 JSON mapping).",
            },
            "tags": [{"name": n, "description": d} for n, d in tags.items()],
            "paths": paths,
            "components": {
                "schemas": components,
                "responses": error_responses(),
                "headers": header_components(),
                "securitySchemes": SECURITY_SCHEMES,
            },
        }


def build_document(
    bindings: Iterable[HttpBinding], comments: Mapping[str, str], *, version: str = "v1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``bindings``; ``comments`` from :mod:`.comments`."""
    return OpenApiBuilder(comments).document(bindings, version=version)
