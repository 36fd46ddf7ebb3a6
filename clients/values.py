"""Query values: Python objects to ``graphgate.v1.Value`` and back.

``google.protobuf.Value`` would turn every number into a double; the contract's
typed ``Value`` keeps them exact, and so does this module:

============================  ==========================================
Python                        ``Value`` kind
============================  ==========================================
``None``                      ``null_value``
``bool``                      ``bool_value``
``int`` (int64 range)         ``int_value``
``int`` (above int64, uint64) ``uint_value``
``int`` (wider, up to 128 b)  ``decimal_value`` (read back as ``Decimal``)
``float``                     ``double_value``
``str``                       ``string_value``
``bytes``, ``bytearray``      ``bytes_value``
``datetime.date``             ``date_value``
aware ``datetime.datetime``   ``timestamp_value`` (microseconds)
``datetime.timedelta``        ``interval_value``
``decimal.Decimal``           ``decimal_value``
``uuid.UUID``                 ``uuid_value``
list, tuple                   ``list_value``
mapping with ``str`` keys     ``map_value``
:class:`Node`                 ``node_value``
:class:`Relationship`         ``relationship_value``
:class:`Path`                 ``path_value``
============================  ==========================================

Naive datetimes are refused rather than guessed: a timestamp without a zone is
a different instant on every machine.
"""

from __future__ import annotations

import datetime as dt
import decimal
import numbers
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.type import date_pb2

from graphgate.v1 import common_pb2

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_INT128_MIN, _INT128_MAX = -(2**127), 2**127 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Node:
    """A graph node: the engine's id (``"table:offset"``), its label and properties."""

    id: str
    label: str
    properties: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """A property by name, like a mapping (``node["name"]``)."""
        return self.properties[key]


@dataclass(frozen=True, slots=True)
class Relationship:
    """A graph relationship from ``source_id`` to ``destination_id``."""

    id: str
    label: str
    source_id: str
    destination_id: str
    properties: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """A property by name, like a mapping (``rel["since"]``)."""
        return self.properties[key]


@dataclass(frozen=True, slots=True)
class Path:
    """An alternating walk: ``nodes[i]`` -``relationships[i]``- ``nodes[i + 1]``."""

    nodes: tuple[Node, ...] = ()
    relationships: tuple[Relationship, ...] = ()

    def __len__(self) -> int:
        """The path's length in relationships (hops), as in Cypher."""
        return len(self.relationships)

    @property
    def start(self) -> Node | None:
        """The first node, or None for an empty path."""
        return self.nodes[0] if self.nodes else None

    @property
    def end(self) -> Node | None:
        """The last node, or None for an empty path."""
        return self.nodes[-1] if self.nodes else None


# --- Python -> Value ------------------------------------------------------------


def to_value(obj: object) -> common_pb2.Value:
    """The ``Value`` message for ``obj``.

    Raises :class:`TypeError` for an unsupported type and :class:`ValueError`
    for a value the contract cannot carry exactly (a naive datetime, an integer
    wider than 128 bits, a non-finite ``Decimal``).
    """
    value = common_pb2.Value()
    _fill(value, obj)
    return value


def to_parameters(params: Mapping[str, object] | None) -> dict[str, common_pb2.Value]:
    """Query parameters as the request's ``map<string, Value>``."""
    if not params:
        return {}
    converted: dict[str, common_pb2.Value] = {}
    for name, obj in params.items():
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be str, got {type(name).__name__}")
        try:
            converted[name] = to_value(obj)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"parameter {name!r}: {exc}") from None
    return converted


def _fill(value: common_pb2.Value, obj: object) -> None:
    # Order matters: bool is an int, datetime is a date.
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        _fill_int(value, obj)
    elif isinstance(obj, float):
        value.double_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, bytes | bytearray | memoryview):
        value.bytes_value = bytes(obj)
    elif isinstance(obj, dt.datetime):
        value.timestamp_value.CopyFrom(_timestamp(obj))
    elif isinstance(obj, dt.date):
        value.date_value.CopyFrom(date_pb2.Date(year=obj.year, month=obj.month, day=obj.day))
    elif isinstance(obj, dt.timedelta):
        value.interval_value.CopyFrom(_duration(obj))
    elif isinstance(obj, decimal.Decimal):
        if not obj.is_finite():
            raise ValueError(f"a Decimal must be finite, got {obj}")
        value.decimal_value = str(obj)
    elif isinstance(obj, uuid.UUID):
        value.uuid_value = str(obj)
    elif isinstance(obj, Node):
        value.node_value.CopyFrom(_node(obj))
    elif isinstance(obj, Relationship):
        value.relationship_value.CopyFrom(_relationship(obj))
    elif isinstance(obj, Path):
        value.path_value.SetInParent()  # an empty path is still a path, not NULL
        value.path_value.nodes.extend(_node(n) for n in obj.nodes)
        value.path_value.relationships.extend(_relationship(r) for r in obj.relationships)
    elif isinstance(obj, Mapping):
        value.map_value.SetInParent()  # {} is an empty map, not NULL
        _fill_map(value.map_value.fields, obj)
    elif isinstance(obj, list | tuple):
        value.list_value.SetInParent()
        value.list_value.values.extend(to_value(item) for item in obj)
    elif isinstance(obj, numbers.Integral):  # numpy and other integer types
        _fill_int(value, int(obj))
    elif isinstance(obj, numbers.Real):
        value.double_value = float(obj)
    else:
        raise TypeError(f"cannot send a {type(obj).__name__} as a query value")


def _fill_int(value: common_pb2.Value, number: int) -> None:
    if _INT64_MIN <= number <= _INT64_MAX:
        value.int_value = number
    elif _INT64_MAX < number <= _UINT64_MAX:
        value.uint_value = number
    elif _INT128_MIN <= number <= _INT128_MAX:
        value.decimal_value = str(number)
    else:
        raise ValueError("integers wider than 128 bits cannot be sent exactly")


def _fill_map(target: Any, obj: Mapping[Any, Any]) -> None:
    for key, item in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"map keys must be str, got {type(key).__name__}")
        target[key].CopyFrom(to_value(item))


def _timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware (use datetime.now(UTC), not utcnow())")
    micros = (moment - _EPOCH) // _MICROSECOND
    seconds, rest = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


def _duration(delta: dt.timedelta) -> duration_pb2.Duration:
    micros = delta // _MICROSECOND
    # Duration wants seconds and nanos of the same sign: truncate toward zero.
    sign = -1 if micros < 0 else 1
    seconds, rest = divmod(abs(micros), 1_000_000)
    return duration_pb2.Duration(seconds=sign * seconds, nanos=sign * rest * 1000)


def _node(node: Node) -> common_pb2.Node:
    message = common_pb2.Node(id=node.id, label=node.label)
    _fill_map(message.properties, node.properties)
    return message


def _relationship(rel: Relationship) -> common_pb2.Relationship:
    message = common_pb2.Relationship(
        id=rel.id, label=rel.label, source_id=rel.source_id, destination_id=rel.destination_id
    )
    _fill_map(message.properties, rel.properties)
    return message


# --- Value -> Python ------------------------------------------------------------


def from_value(value: common_pb2.Value) -> Any:
    """The Python object for a ``Value`` (the table in this module's docstring).

    An unset kind is NULL and gives ``None``. Nanoseconds beyond the
    microsecond are dropped (Python's datetime and timedelta stop there).
    """
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "uint_value":
        return value.uint_value
    if kind == "double_value":
        return value.double_value
    if kind == "string_value":
        return value.string_value
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "date_value":
        d = value.date_value
        return dt.date(d.year, d.month, d.day)
    if kind == "timestamp_value":
        ts = value.timestamp_value
        return _EPOCH + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    if kind == "interval_value":
        span = value.interval_value
        return dt.timedelta(seconds=span.seconds, microseconds=int(span.nanos / 1000))
    if kind == "decimal_value":
        return decimal.Decimal(value.decimal_value)
    if kind == "uuid_value":
        return uuid.UUID(value.uuid_value)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    if kind == "map_value":
        return _map(value.map_value.fields)
    if kind == "node_value":
        return node_from_proto(value.node_value)
    if kind == "relationship_value":
        return relationship_from_proto(value.relationship_value)
    if kind == "path_value":
        return Path(
            nodes=tuple(node_from_proto(n) for n in value.path_value.nodes),
            relationships=tuple(relationship_from_proto(r) for r in value.path_value.relationships),
        )
    raise ValueError(f"unknown Value kind {kind!r}: upgrade graphgate")  # pragma: no cover


def from_values(values: Iterable[common_pb2.Value]) -> list[Any]:
    """A row of cells as a list of Python objects."""
    return [from_value(v) for v in values]


def _map(fields: Mapping[str, common_pb2.Value]) -> dict[str, Any]:
    return {key: from_value(item) for key, item in sorted(fields.items())}


def node_from_proto(message: common_pb2.Node) -> Node:
    """A :class:`Node` from its message."""
    return Node(id=message.id, label=message.label, properties=_map(message.properties))


def relationship_from_proto(message: common_pb2.Relationship) -> Relationship:
    """A :class:`Relationship` from its message."""
    return Relationship(
        id=message.id,
        label=message.label,
        source_id=message.source_id,
        destination_id=message.destination_id,
        properties=_map(message.properties),
    )


def plain(obj: Any) -> Any:
    """``obj`` with nodes, relationships and paths turned into dicts (for Arrow, JSON)."""
    if isinstance(obj, Node):
        return {"id": obj.id, "label": obj.label, "properties": plain(obj.properties)}
    if isinstance(obj, Relationship):
        return {
            "id": obj.id,
            "label": obj.label,
            "source_id": obj.source_id,
            "destination_id": obj.destination_id,
            "properties": plain(obj.properties),
        }
    if isinstance(obj, Path):
        return {
            "nodes": [plain(n) for n in obj.nodes],
            "relationships": [plain(r) for r in obj.relationships],
        }
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes | bytearray):
        return [plain(v) for v in obj]
    return obj
