"""Typed values both ways: engine results to ``graphgate.v1.Value``, ``Value`` to parameters.

Results map exactly: ``int`` → ``int_value`` (above int64, and UINT columns:
``uint_value``); ``Decimal`` (INT128, DECIMAL) → ``decimal_value`` text;
``date`` → ``google.type.Date``; ``datetime`` (every TIMESTAMP variant, naive
= UTC) → ``Timestamp``; ``timedelta`` (INTERVAL; the client folds months into
days) → ``Duration``; ``UUID`` → ``uuid_value``; lists, string-keyed maps
and structs → lists and maps; other maps → lists of ``{key, value}``; nodes
(``_ID``, ``_LABEL``), relationships (``_SRC``, ``_DST``) and paths
(``_NODES``, ``_RELS``) → graph messages with ids ``"table:offset"``, as is a
top-level INTERNAL_ID column (nested ids stay ``{offset, table}`` maps).
Parameters map back; decimals, and unsigned values above int64 (the client
cannot bind those as integers), become ``Decimal``; maps become STRUCTs.

Security: parameters are untrusted. :func:`to_parameters` bounds their
count, names, depth, element count and size before building anything,
refuses graph values, and yields only plain values: nothing the engine's
client would treat as a data source.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2

from graphgate.server.errors import FieldViolation, InvalidArgument
from graphgate.v1 import common_pb2

Value = common_pb2.Value
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_UNSIGNED = frozenset({"UINT8", "UINT16", "UINT32", "UINT64"})
_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_NODE_KEYS = frozenset({"_ID", "_LABEL"})
_REL_KEYS = frozenset({"_ID", "_LABEL", "_SRC", "_DST"})


def _internal_id(obj: Any) -> str:
    return f"{obj['table']}:{obj['offset']}"


def _is_internal_id(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.keys() == {"offset", "table"}


def _fill_int(target: Any, obj: int) -> None:
    if _INT64_MIN <= obj <= _INT64_MAX:
        target.int_value = obj
    elif 0 <= obj <= _UINT64_MAX:
        target.uint_value = obj
    else:
        target.decimal_value = str(obj)


def _fill_node(node: Any, obj: dict[str, Any]) -> None:
    node.id = _internal_id(obj["_ID"])
    node.label = str(obj["_LABEL"])
    _fill_properties(node.properties, obj, _NODE_KEYS)


def _fill_rel(rel: Any, obj: dict[str, Any]) -> None:
    rel.id = _internal_id(obj["_ID"])
    rel.label = str(obj["_LABEL"])
    rel.source_id = _internal_id(obj["_SRC"])
    rel.destination_id = _internal_id(obj["_DST"])
    _fill_properties(rel.properties, obj, _REL_KEYS)


def _fill_properties(properties: Any, obj: dict[str, Any], internal: frozenset[str]) -> None:
    for key, item in obj.items():
        if key not in internal:
            fill(properties[key], item)


def _fill_dict(target: Any, obj: dict[Any, Any]) -> None:
    keys = obj.keys()
    if "_NODES" in keys and "_RELS" in keys and len(keys) == 2:
        for node in obj["_NODES"] or ():
            _fill_node(target.path_value.nodes.add(), node)
        for rel in obj["_RELS"] or ():
            _fill_rel(target.path_value.relationships.add(), rel)
    elif keys >= _REL_KEYS and _is_internal_id(obj["_SRC"]) and _is_internal_id(obj["_ID"]):
        _fill_rel(target.relationship_value, obj)
    elif keys >= _NODE_KEYS and _is_internal_id(obj["_ID"]):
        _fill_node(target.node_value, obj)
    elif all(type(key) is str for key in keys):
        fields = target.map_value.fields
        if not obj:
            target.map_value.SetInParent()
        for key, item in obj.items():
            fill(fields[key], item)
    else:
        # A MAP with non-text keys keeps its key types as a list of entries.
        entries = target.list_value
        entries.SetInParent()
        for key, item in obj.items():
            entry = entries.values.add().map_value.fields
            fill(entry["key"], key)
            fill(entry["value"], item)


def _fill_list(target: Any, obj: Sequence[Any]) -> None:
    values = target.list_value
    values.SetInParent()
    for item in obj:
        fill(values.values.add(), item)


def _fill_date(target: Any, obj: dt.date) -> None:
    date = target.date_value
    date.year, date.month, date.day = obj.year, obj.month, obj.day


def _fill_unsigned(target: Any, obj: object) -> None:
    if obj is None:
        fill(target, obj)
    else:
        target.uint_value = obj


def _fill_internal_id(target: Any, obj: object) -> None:
    if _is_internal_id(obj):
        target.string_value = _internal_id(obj)
    else:
        fill(target, obj)


_FILLERS: dict[type, Callable[[Any, Any], None]] = {
    bool: lambda t, o: setattr(t, "bool_value", o),
    int: _fill_int,
    float: lambda t, o: setattr(t, "double_value", o),
    str: lambda t, o: setattr(t, "string_value", o),
    bytes: lambda t, o: setattr(t, "bytes_value", o),
    decimal.Decimal: lambda t, o: setattr(t, "decimal_value", format(o, "f")),
    dt.datetime: lambda t, o: t.timestamp_value.FromDatetime(o),
    dt.date: _fill_date,
    dt.timedelta: lambda t, o: t.interval_value.FromTimedelta(o),
    uuid.UUID: lambda t, o: setattr(t, "uuid_value", str(o)),
    list: _fill_list,
    tuple: _fill_list,
    dict: _fill_dict,
}


def fill(target: Any, obj: object) -> None:
    """Write the engine value ``obj`` into the empty ``Value`` ``target``.

    Never raises for values the engine returns; an unknown type becomes its
    text. Costs about a microsecond per scalar.
    """
    if obj is None:
        target.null_value = struct_pb2.NULL_VALUE
        return
    filler = _FILLERS.get(type(obj))
    if filler is None:
        filler = next((f for t, f in _FILLERS.items() if isinstance(obj, t)), None)
    if filler is None:
        target.string_value = str(obj)
    else:
        filler(target, obj)


def column_fillers(types: Sequence[str]) -> list[Callable[[Any, object], None]]:
    """One filler per result column; column types refine what values alone cannot say."""
    special = {name: _fill_unsigned for name in _UNSIGNED} | {"INTERNAL_ID": _fill_internal_id}
    return [special.get(name, fill) for name in types]


def _refuse(name: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        public_message=f"parameter {name}: {description}",
        reason="INVALID_PARAMETER",
        violations=[FieldViolation(f"parameters[{name}]", description)],
    )


class _Budget:
    def __init__(self, max_depth: int, max_elements: int) -> None:
        self.name, self.max_depth, self.left = "", max_depth, max_elements

    def python(self, value: Value, depth: int) -> object:
        self.left -= 1
        if depth > self.max_depth:
            raise _refuse(self.name, f"nested deeper than {self.max_depth} levels")
        if self.left < 0:
            raise _refuse(self.name, "has too many elements")
        kind = value.WhichOneof("kind")
        if kind is None or kind == "null_value":
            return None
        if kind == "list_value":
            return [self.python(item, depth + 1) for item in value.list_value.values]
        if kind == "map_value":
            return {k: self.python(v, depth + 1) for k, v in value.map_value.fields.items()}
        if kind == "uint_value":
            raw = value.uint_value
            return raw if raw <= _INT64_MAX else decimal.Decimal(raw)
        if kind == "decimal_value":
            return self._decimal(value.decimal_value)
        try:
            if kind == "date_value":
                return dt.date(value.date_value.year, value.date_value.month, value.date_value.day)
            if kind == "timestamp_value":
                return value.timestamp_value.ToDatetime(tzinfo=dt.UTC)
            if kind == "interval_value":
                return value.interval_value.ToTimedelta()
            if kind == "uuid_value":
                return uuid.UUID(value.uuid_value)
        except (ValueError, OverflowError):
            raise _refuse(self.name, f"has an invalid or out-of-range {kind}") from None
        if kind in ("node_value", "relationship_value", "path_value"):
            raise _refuse(self.name, "graph values cannot be parameters")
        return getattr(value, kind)

    def _decimal(self, text: str) -> decimal.Decimal:
        with contextlib.suppress(decimal.InvalidOperation):
            number = decimal.Decimal(text)
            if number.is_finite() and len(number.as_tuple().digits) <= 38:
                return number
        raise _refuse(self.name, "must be a finite decimal of at most 38 digits")


def to_parameters(
    values: Mapping[str, Value],
    *,
    max_count: int = 64,
    max_depth: int = 16,
    max_elements: int = 100_000,
    max_bytes: int = 4 * 1024 * 1024,
) -> dict[str, object]:
    """Python parameters for the engine from client ``Value``\\ s.

    Raises :class:`InvalidArgument` naming the parameter when a name is not
    an identifier, or a bound (count, depth, elements, encoded bytes) is
    exceeded, or a value cannot be a parameter. Costs one pass over the values.
    """
    if len(values) > max_count or sum(len(k) + v.ByteSize() for k, v in values.items()) > max_bytes:
        raise InvalidArgument(
            public_message=f"at most {max_count} parameters of {max_bytes} bytes in all",
            reason="INVALID_PARAMETER",
        )
    budget = _Budget(max_depth, max_elements)  # elements count across all parameters
    out: dict[str, object] = {}
    for name, value in values.items():
        if not _NAME.match(name):
            raise _refuse(name[:64], "the name must be an identifier of at most 64 characters")
        budget.name = name
        out[name] = budget.python(value, 1)
    return out
