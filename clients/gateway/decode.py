"""HTTP request → protobuf request message (path, query and body binding).

Path variables, the query string and the JSON body are bound per the RPC's
HTTP rule. JSON is proto3 JSON (``google.protobuf.json_format``): camelCase
or original field names, int64 as strings or numbers, enums by name.

Security: every input here is untrusted. Unknown fields and unknown query
parameters are refused (400), never ignored, so a typo cannot silently drop
a constraint; bare ``NaN``/``Infinity`` (not JSON) is refused; nesting is
bounded (``json_format``'s recursion limit, and Python's for ``json.loads``);
a body on a rule that binds none is refused. Error messages are cut to a
few hundred characters and go back, JSON-encoded, only to the client that
sent the input. Path variables win over body fields of the same name: the
URL is what authorization and audit see.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor, json_format
from google.protobuf.message import Message

from graphgate.clients.gateway.bindings import HttpBinding

_FD = descriptor.FieldDescriptor
_MAX_MESSAGE = 300
_JSON_TYPES = ("application/json",)


class BindingError(Exception):
    """The HTTP request cannot become the RPC's request message (400 or 415).

    ``field`` names the offending field or parameter when one is to blame.
    """

    def __init__(self, message: str, *, field: str = "", status: int = 400) -> None:
        super().__init__(message[:_MAX_MESSAGE])
        self.message = message[:_MAX_MESSAGE]
        self.field = field
        self.status = status


def _refuse_constant(name: str) -> Any:
    raise BindingError(f'{name} is not JSON; send "{name}" as a string')


def _json_body(body: bytes, content_type: str | None) -> Any:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media and media not in _JSON_TYPES and not media.endswith("+json"):
        raise BindingError("the request body must be application/json", status=415)
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except BindingError:
        raise
    except (ValueError, RecursionError):
        raise BindingError("the request body is not valid JSON") from None


def _parse(data: Any, message: Message) -> None:
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False, max_recursion_depth=64)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise BindingError(str(exc).split("\n", 1)[0]) from None


def _field(message: descriptor.Descriptor, name: str) -> _FD | None:
    found = message.fields_by_name.get(name)
    if found is not None:
        return found
    return next((f for f in message.fields if f.json_name == name), None)


def _resolve(root: descriptor.Descriptor, dotted: str) -> list[_FD]:
    """The field chain of ``a.b.c`` (original or JSON names); raises BindingError."""
    chain: list[_FD] = []
    current: descriptor.Descriptor | None = root
    for part in dotted.split("."):
        field = _field(current, part) if current is not None else None
        if field is None:
            raise BindingError(f"unknown parameter {dotted!r}", field=dotted)
        chain.append(field)
        current = field.message_type
    return chain


def _scalar(field: _FD, raw: str, name: str) -> Any:
    if field.type == _FD.TYPE_BOOL:
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BindingError(f"{name} must be true or false", field=name)
    nested = field.message_type
    if nested is not None and nested.full_name not in _STRING_WKT:
        raise BindingError(f"{name} cannot be given in the query string", field=name)
    return raw  # json_format parses numbers, enums, timestamps and bytes from text


# Well-known types whose JSON form is a string, so a query value can carry them.
_STRING_WKT = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.StringValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.BytesValue",
    }
)


def _nest(target: dict[str, Any], chain: list[_FD], value: Any) -> None:
    for field in chain[:-1]:
        target = target.setdefault(field.json_name, {})
    target[chain[-1].json_name] = value


def _query_dict(
    root: descriptor.Descriptor, query: Sequence[tuple[str, str]], bound: set[str]
) -> dict[str, Any]:
    values: dict[str, list[str]] = {}
    for key, value in query:
        values.setdefault(key, []).append(value)
    data: dict[str, Any] = {}
    for key, raws in values.items():
        chain = _resolve(root, key)
        path = ".".join(f.name for f in chain)
        if path in bound or chain[0].name in bound:
            raise BindingError(f"{key!r} is bound by the path or body", field=key)
        last = chain[-1]
        if any(f.is_repeated for f in chain[:-1]):
            raise BindingError(f"{key!r} cannot be given in the query string", field=key)
        if last.is_repeated:
            if last.message_type is not None and last.message_type.GetOptions().map_entry:
                raise BindingError(f"{key!r} cannot be given in the query string", field=key)
            _nest(data, chain, [_scalar(last, r, key) for r in raws])
        elif len(raws) > 1:
            raise BindingError(f"{key!r} is given more than once", field=key)
        else:
            _nest(data, chain, _scalar(last, raws[0], key))
    return data


def build_request(
    binding: HttpBinding,
    path_values: dict[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
    content_type: str | None,
) -> Message:
    """The RPC's request message; raises :class:`BindingError` for a bad request."""
    request_type = binding.rpc.request_type
    root = binding.request
    message = request_type()
    if binding.body == "*":
        whole = _json_body(body, content_type) if body.strip() else {}
        if not isinstance(whole, dict):
            raise BindingError("the request body must be a JSON object")
        _parse(whole, message)
    elif binding.body:
        if body.strip():
            field = root.fields_by_name[binding.body]
            _parse({field.json_name: _json_body(body, content_type)}, message)
    elif body.strip():
        raise BindingError(f"{binding.http_method} {binding.template.source} takes no body")

    if query:
        if binding.body == "*":
            raise BindingError("this request takes its fields from the body, not the query")
        bound = set(path_values) | ({binding.body} if binding.body else set())
        from_query = request_type()
        _parse(_query_dict(root, query, bound), from_query)
        message.MergeFrom(from_query)

    if path_values:
        from_path = request_type()
        bound_values: dict[str, Any] = {}
        for field_path, value in path_values.items():
            chain = _resolve(root, field_path)
            _nest(bound_values, chain, _scalar(chain[-1], value, field_path))
        _parse(bound_values, from_path)
        message.MergeFrom(from_path)  # the path wins over the body
    return message
