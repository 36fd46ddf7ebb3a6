"""``buf.validate`` field rules → the JSON Schema keywords OpenAPI can express.

The rules the server enforces with protovalidate are read from the
descriptors (the ``buf.validate.field`` option) and written into the field's
schema: lengths, patterns, formats (email, uuid, ip, uri, hostname), value
sets, numeric ranges, item and pair counts, map key patterns. What JSON
Schema cannot say (byte lengths, ranges of int64 sent as strings, "in the
future") goes into the field's description instead, so the document never
claims less than the server checks, and never more.
"""

from __future__ import annotations

import re
from typing import Any

from buf.validate import validate_pb2
from google.protobuf import descriptor

_FD = descriptor.FieldDescriptor
_INT_KINDS = frozenset({"int32", "uint32", "sint32", "fixed32", "sfixed32"})
_LONG_KINDS = frozenset({"int64", "uint64", "sint64", "fixed64", "sfixed64"})
_FLOAT_KINDS = frozenset({"float", "double"})
_FORMATS = {
    "email": "email",
    "hostname": "hostname",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "uri": "uri",
    "uri_ref": "uri-reference",
    "uuid": "uuid",
}
_WELL_KNOWN_PATTERNS = {
    "tuuid": "^[0-9a-fA-F]{32}$",
    "ulid": "^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$",
}


def field_rules(field: _FD) -> validate_pb2.FieldRules | None:
    """The field's ``buf.validate.field`` rules, or None."""
    options = field.GetOptions()
    if not options.HasExtension(validate_pb2.field):
        return None
    rules: validate_pb2.FieldRules = options.Extensions[validate_pb2.field]
    return rules


def is_required(field: _FD) -> bool:
    """True when protovalidate requires the field to be set (non-zero)."""
    rules = field_rules(field)
    return rules is not None and rules.required


def _add_pattern(schema: dict[str, Any], pattern: str) -> None:
    if "pattern" not in schema:
        schema["pattern"] = pattern
    else:
        schema.setdefault("allOf", []).append({"pattern": pattern})


def _string(schema: dict[str, Any], rules: validate_pb2.StringRules, notes: list[str]) -> None:
    if rules.HasField("const"):
        schema["const"] = rules.const
    if rules.HasField("len"):
        schema["minLength"] = schema["maxLength"] = rules.len
    if rules.HasField("min_len"):
        schema["minLength"] = rules.min_len
    if rules.HasField("max_len"):
        schema["maxLength"] = rules.max_len
    if rules.HasField("max_bytes"):
        # Every string of at most N UTF-8 bytes has at most N characters.
        schema["maxLength"] = min(schema.get("maxLength", rules.max_bytes), rules.max_bytes)
        notes.append(f"at most {rules.max_bytes} bytes in UTF-8")
    if rules.HasField("min_bytes") or rules.HasField("len_bytes"):
        notes.append("byte-length limits apply (UTF-8)")
    if rules.HasField("pattern"):
        _add_pattern(schema, rules.pattern)
    if rules.HasField("prefix"):
        _add_pattern(schema, "^" + re.escape(rules.prefix))
    if rules.HasField("suffix"):
        _add_pattern(schema, re.escape(rules.suffix) + "$")
    if rules.HasField("contains"):
        _add_pattern(schema, re.escape(rules.contains))
    if rules.HasField("not_contains"):
        notes.append(f"must not contain {rules.not_contains!r}")
    if getattr(rules, "in"):
        schema["enum"] = list(getattr(rules, "in"))
    if rules.not_in:
        schema["not"] = {"enum": list(rules.not_in)}
    well_known = rules.WhichOneof("well_known")
    if well_known in _FORMATS:
        schema["format"] = _FORMATS[well_known]
    elif well_known in _WELL_KNOWN_PATTERNS:
        _add_pattern(schema, _WELL_KNOWN_PATTERNS[well_known])
    elif well_known == "ip":
        schema["anyOf"] = [{"format": "ipv4"}, {"format": "ipv6"}]
    elif well_known is not None:
        notes.append(f"must be a valid {well_known.replace('_', ' ')}")


def _number(
    schema: dict[str, Any], rules: Any, notes: list[str], *, as_string: bool, kind: str
) -> None:
    bounds = {
        "gt": ("exclusiveMinimum", "greater than"),
        "gte": ("minimum", "at least"),
        "lt": ("exclusiveMaximum", "less than"),
        "lte": ("maximum", "at most"),
    }
    set_bounds = {name: getattr(rules, name) for name in bounds if rules.HasField(name)}
    lower = set_bounds.get("gt", set_bounds.get("gte"))
    upper = set_bounds.get("lt", set_bounds.get("lte"))
    if lower is not None and upper is not None and lower > upper:
        notes.append(f"outside the range {upper}..{lower}")  # protovalidate's exclusive range
        return
    for name, value in set_bounds.items():
        keyword, words = bounds[name]
        if as_string:
            notes.append(f"{words} {value}")
        else:
            schema[keyword] = value
    if rules.HasField("const"):
        if as_string:
            notes.append(f"exactly {rules.const}")
        else:
            schema["const"] = rules.const
    values = list(getattr(rules, "in"))
    if values:
        schema["enum"] = [str(v) for v in values] if as_string else values
    if rules.not_in:
        excluded = [str(v) for v in rules.not_in] if as_string else list(rules.not_in)
        schema["not"] = {"enum": excluded}
    if kind in _FLOAT_KINDS and getattr(rules, "finite", False):
        notes.append("must be finite")


def _enum(schema: dict[str, Any], rules: validate_pb2.EnumRules, enum: Any) -> None:
    allowed = {v.number for v in enum.values}
    if rules.HasField("const"):
        allowed &= {rules.const}
    if getattr(rules, "in"):
        allowed &= set(getattr(rules, "in"))
    allowed -= set(rules.not_in)
    schema["enum"] = [v.name for v in enum.values if v.number in allowed]


def apply_value_rules(
    schema: dict[str, Any], rules: validate_pb2.FieldRules, field: _FD, notes: list[str]
) -> None:
    """Write ``rules`` for one value (a scalar, an item, a map value) into ``schema``."""
    kind = rules.WhichOneof("type")
    if kind == "string":
        _string(schema, rules.string, notes)
    elif kind in _INT_KINDS or kind in _FLOAT_KINDS:
        _number(schema, getattr(rules, kind), notes, as_string=False, kind=kind)
    elif kind in _LONG_KINDS:
        _number(schema, getattr(rules, kind), notes, as_string=True, kind=kind)
    elif kind == "enum" and field.enum_type is not None:
        _enum(schema, rules.enum, field.enum_type)
    elif kind == "timestamp":
        if rules.timestamp.gt_now:
            notes.append("must be in the future")
        if rules.timestamp.lt_now:
            notes.append("must be in the past")
    elif kind is not None:
        notes.append(f"{kind} rules apply (see the contract)")
    if rules.required and not field.is_repeated:
        _required_value(schema, field)


def _required_value(schema: dict[str, Any], field: _FD) -> None:
    """A required proto3 scalar must not be its zero value."""
    if field.type == _FD.TYPE_STRING:
        schema["minLength"] = max(1, schema.get("minLength", 0))
    elif field.enum_type is not None and "enum" in schema:
        zero = field.enum_type.values_by_number.get(0)
        schema["enum"] = [n for n in schema["enum"] if zero is None or n != zero.name]


def apply_field_rules(schema: dict[str, Any], field: _FD) -> list[str]:
    """Write ``field``'s rules into its schema; returns notes for its description."""
    rules = field_rules(field)
    notes: list[str] = []
    if rules is None:
        return notes
    kind = rules.WhichOneof("type")
    if kind == "repeated":
        repeated = rules.repeated
        if repeated.HasField("min_items"):
            schema["minItems"] = repeated.min_items
        if repeated.HasField("max_items"):
            schema["maxItems"] = repeated.max_items
        if repeated.unique:
            schema["uniqueItems"] = True
        if repeated.HasField("items"):
            apply_value_rules(schema["items"], repeated.items, field, notes)
    elif kind == "map":
        pairs = rules.map
        if pairs.HasField("min_pairs"):
            schema["minProperties"] = pairs.min_pairs
        if pairs.HasField("max_pairs"):
            schema["maxProperties"] = pairs.max_pairs
        entry = field.message_type
        if entry is None:
            return notes
        if pairs.HasField("keys"):
            names: dict[str, Any] = {"type": "string"}
            apply_value_rules(names, pairs.keys, entry.fields_by_name["key"], notes)
            schema["propertyNames"] = names
        if pairs.HasField("values"):
            value_field = entry.fields_by_name["value"]
            apply_value_rules(schema["additionalProperties"], pairs.values, value_field, notes)
    else:
        apply_value_rules(schema, rules, field, notes)
    return notes
