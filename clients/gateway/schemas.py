"""Protobuf messages → JSON Schema (OpenAPI 3.1) in their proto3 JSON form.

Names are the JSON names (camelCase); int64 kinds are strings with
``format: int64`` (JSON numbers lose precision past 2^53); enums are their
value names; doubles may also be ``"NaN"``/``"Infinity"``; well-known types
take their JSON forms (a Timestamp is an RFC 3339 string). Every message is
one component under its full name (``graphgate.v1.Value``) and referenced
with ``$ref``, which is what makes the recursive ``Value`` expressible.
Messages refuse unknown properties (``additionalProperties: false``), as
the sidecar does. Constraints come from :mod:`.constraints`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from google.protobuf import descriptor

from graphgate.clients.gateway.constraints import apply_field_rules, is_required

_FD = descriptor.FieldDescriptor
_REF = "#/components/schemas/"
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}
_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
_DOUBLE = {
    "anyOf": [
        {"type": "number", "format": "double"},
        {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
    ]
}
_SCALARS: Mapping[int, dict[str, Any]] = {
    _FD.TYPE_STRING: {"type": "string"},
    _FD.TYPE_BOOL: {"type": "boolean"},
    _FD.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
    _FD.TYPE_DOUBLE: _DOUBLE,
    _FD.TYPE_FLOAT: _DOUBLE,
    _FD.TYPE_INT32: _INT32,
    _FD.TYPE_SINT32: _INT32,
    _FD.TYPE_SFIXED32: _INT32,
    _FD.TYPE_UINT32: _UINT32,
    _FD.TYPE_FIXED32: _UINT32,
    _FD.TYPE_INT64: _INT64,
    _FD.TYPE_SINT64: _INT64,
    _FD.TYPE_SFIXED64: _INT64,
    _FD.TYPE_UINT64: _UINT64,
    _FD.TYPE_FIXED64: _UINT64,
}
#: Well-known types whose proto3 JSON form is not an object of their fields.
WELL_KNOWN: Mapping[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]{1,12}(\\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": _SCALARS[_FD.TYPE_BYTES],
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.DoubleValue": _DOUBLE,
    "google.protobuf.FloatValue": _DOUBLE,
    "google.protobuf.Int32Value": _SCALARS[_FD.TYPE_INT32],
    "google.protobuf.UInt32Value": _SCALARS[_FD.TYPE_UINT32],
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
}
_MAX_PAIRWISE_ONEOF = 4


def ref(name: str) -> dict[str, Any]:
    """A ``$ref`` to the component ``name``."""
    return {"$ref": _REF + name}


class SchemaBuilder:
    """Collects component schemas while describing messages and fields.

    ``comments`` maps full names to their contract comments (may be empty).
    """

    def __init__(self, comments: Mapping[str, str]) -> None:
        self.components: dict[str, Any] = {}
        self._comments = comments

    def message_ref(self, message: descriptor.Descriptor) -> dict[str, Any]:
        """A schema for ``message``: a ``$ref`` (adding the component once)."""
        if message.full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[message.full_name])
        if message.full_name not in self.components:
            self.components[message.full_name] = {}  # reserve first: recursion stops here
            self.components[message.full_name] = self.object_schema(message)
        return ref(message.full_name)

    def object_schema(
        self, message: descriptor.Descriptor, *, omit: Collection[str] = ()
    ) -> dict[str, Any]:
        """The inline object schema of ``message``, without the fields in ``omit``."""
        fields = [f for f in message.fields if f.name not in omit]
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.json_name: self.field_schema(f) for f in fields},
            "additionalProperties": False,
        }
        required = [f.json_name for f in fields if is_required(f)]
        if required:
            schema["required"] = required
        self._oneofs(schema, message, fields)
        text = self._comments.get(message.full_name)
        if text:
            schema["description"] = text
        return schema

    @staticmethod
    def _oneofs(schema: dict[str, Any], message: descriptor.Descriptor, fields: list[_FD]) -> None:
        kept = {f.name for f in fields}
        groups = [
            [f.json_name for f in o.fields if f.name in kept]
            for o in message.oneofs
            if not (len(o.fields) == 1 and o.fields[0].has_presence and o.name.startswith("_"))
        ]
        groups = [g for g in groups if len(g) > 1]
        if len(groups) == 1 and len(groups[0]) == len(fields):
            schema["maxProperties"] = 1  # the whole message is one choice (Value)
            return
        pairs = [
            {"not": {"required": [a, b]}}
            for group in groups
            if len(group) <= _MAX_PAIRWISE_ONEOF
            for i, a in enumerate(group)
            for b in group[i + 1 :]
        ]
        if pairs:
            schema.setdefault("allOf", []).extend(pairs)

    def value_schema(self, field: _FD) -> dict[str, Any]:
        """The schema of one value of ``field`` (an element, for a list)."""
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        if field.enum_type is not None:
            if field.enum_type.full_name == "google.protobuf.NullValue":
                return {"type": "null"}
            return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        return dict(_SCALARS[field.type])

    def field_schema(self, field: _FD) -> dict[str, Any]:
        """The schema of ``field``: its value, a list or a map, with its constraints."""
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.value_schema(value),
            }
            if key.type != _FD.TYPE_STRING:
                schema["propertyNames"] = {"pattern": "^-?[0-9]+$|^true$|^false$"}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value_schema(field)}
        else:
            schema = self.value_schema(field)
        notes = apply_field_rules(schema, field)
        described = self._describe(field, notes)
        if described:
            schema["description"] = described
        return schema

    def _describe(self, field: _FD, notes: list[str]) -> str:
        text = self._comments.get(field.full_name, "")
        enum = field.enum_type
        if enum is not None:
            values = [
                f"{v.name}: {self._comments[f'{enum.full_name}.{v.name}'].rstrip('.')}"
                for v in enum.values
                if f"{enum.full_name}.{v.name}" in self._comments
            ]
            if values:
                text = " ".join([text, "Values:", "; ".join(values) + "."]).strip()
        if notes:
            text = " ".join([text, "Constraints: " + "; ".join(notes) + "."]).strip()
        return text
