"""Engine values to ``graphgate.v1.Value`` and back, exactly; parameters bounded (C14)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.type import date_pb2

from graphgate.server.engine.values import column_fillers, fill, to_parameters
from graphgate.server.errors import InvalidArgument
from graphgate.v1 import common_pb2

V = common_pb2.Value


def value_of(obj: object) -> common_pb2.Value:
    target = V()
    fill(target, obj)
    return target


def lst(*items: common_pb2.Value) -> common_pb2.Value:
    return V(list_value=common_pb2.ValueList(values=list(items)))


def mp(**fields: common_pb2.Value) -> common_pb2.Value:
    return V(map_value=common_pb2.ValueMap(fields=fields))


NULL = V(null_value=struct_pb2.NULL_VALUE)


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        (None, NULL),
        (True, V(bool_value=True)),
        (-(2**63), V(int_value=-(2**63))),
        (2**63 - 1, V(int_value=2**63 - 1)),
        (2**64 - 1, V(uint_value=2**64 - 1)),
        (2**100, V(decimal_value=str(2**100))),
        (1.5, V(double_value=1.5)),
        ("héllo ☃ 𝄞", V(string_value="héllo ☃ 𝄞")),
        (b"\x00\xff", V(bytes_value=b"\x00\xff")),
        (decimal.Decimal("1.500"), V(decimal_value="1.500")),
        (decimal.Decimal("1E+5"), V(decimal_value="100000")),
        (dt.date(2024, 2, 29), V(date_value=date_pb2.Date(year=2024, month=2, day=29))),
        (
            dt.datetime(2024, 2, 29, 12, 34, 56, 123456),
            V(timestamp_value=timestamp_pb2.Timestamp(seconds=1709210096, nanos=123456000)),
        ),
        (
            dt.datetime(2024, 2, 29, 14, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            V(timestamp_value=timestamp_pb2.Timestamp(seconds=1709210096)),
        ),
        (dt.timedelta(days=-1, seconds=5), V(interval_value=duration_pb2.Duration(seconds=-86395))),
        (
            uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            V(uuid_value="a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
        ([1, [2], []], lst(V(int_value=1), lst(V(int_value=2)), lst())),
        ({"a": 1, "b": None}, mp(a=V(int_value=1), b=NULL)),
        ({}, V(map_value=common_pb2.ValueMap())),
        ({1: "x"}, lst(mp(key=V(int_value=1), value=V(string_value="x")))),
        ({"offset": 3, "table": 0}, mp(offset=V(int_value=3), table=V(int_value=0))),
    ],
)
def test_engine_values_convert_exactly(engine: object, expected: common_pb2.Value) -> None:
    assert value_of(engine) == expected


NODE = {"_ID": {"offset": 0, "table": 0}, "_LABEL": "P", "id": 1, "tags": None}
REL = {
    "_SRC": {"offset": 0, "table": 0},
    "_DST": {"offset": 1, "table": 0},
    "_LABEL": "K",
    "_ID": {"offset": 4, "table": 1},
    "since": 5,
}


def test_graph_values_become_nodes_relationships_and_paths() -> None:
    node = value_of(NODE).node_value
    assert (node.id, node.label) == ("0:0", "P")
    assert dict(node.properties) == {"id": V(int_value=1), "tags": NULL}
    rel = value_of(REL).relationship_value
    assert (rel.id, rel.label, rel.source_id, rel.destination_id) == ("1:4", "K", "0:0", "0:1")
    assert dict(rel.properties) == {"since": V(int_value=5)}
    path = value_of({"_NODES": [NODE, NODE], "_RELS": [REL]}).path_value
    assert [n.id for n in path.nodes] == ["0:0", "0:0"]
    assert [r.id for r in path.relationships] == ["1:4"]


def test_column_types_refine_values() -> None:
    unsigned, internal_id, other = column_fillers(["UINT8", "INTERNAL_ID", "INT64"])
    target = V()
    unsigned(target, 7)
    assert target == V(uint_value=7)
    target = V()
    internal_id(target, {"offset": 3, "table": 2})
    assert target == V(string_value="2:3")
    target = V()
    other(target, 7)
    assert target == V(int_value=7)


def test_parameters_become_plain_values() -> None:
    params = to_parameters(
        {
            "i": V(int_value=-(2**63)),
            "u": V(uint_value=2**64 - 1),
            "small_u": V(uint_value=5),
            "d": V(decimal_value="-1.25"),
            "day": V(date_value=date_pb2.Date(year=2024, month=2, day=29)),
            "at": V(timestamp_value=timestamp_pb2.Timestamp(seconds=1709210096, nanos=5000)),
            "span": V(interval_value=duration_pb2.Duration(seconds=90061, nanos=1000)),
            "id": V(uuid_value="a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "nested": lst(mp(a=lst(V(int_value=1))), NULL),
            "none": V(),
        }
    )
    assert params == {
        "i": -(2**63),
        "u": decimal.Decimal(2**64 - 1),
        "small_u": 5,
        "d": decimal.Decimal("-1.25"),
        "day": dt.date(2024, 2, 29),
        "at": dt.datetime(2024, 2, 29, 12, 34, 56, 5, tzinfo=dt.UTC),
        "span": dt.timedelta(days=1, seconds=3661, microseconds=1),
        "id": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        "nested": [{"a": [1]}, None],
        "none": None,
    }


def deep(levels: int) -> common_pb2.Value:
    value = V(int_value=1)
    for _ in range(levels - 1):
        value = lst(value)
    return value


@pytest.mark.parametrize(
    ("parameters", "limits", "fragment"),
    [
        ({"p": deep(17)}, {}, "nested deeper"),
        ({"p": lst(*[V(int_value=1)] * 11)}, {"max_elements": 10}, "too many elements"),
        ({"p": V(string_value="x" * 2000)}, {"max_bytes": 1000}, "1000 bytes in all"),
        ({f"p{i}": V() for i in range(65)}, {}, "at most 64"),
        ({"bad name": V()}, {}, "identifier"),
        ({"p": V(node_value=common_pb2.Node(id="0:0"))}, {}, "graph values"),
        ({"p": V(decimal_value="NaN")}, {}, "finite decimal"),
        ({"p": V(decimal_value="1" * 39)}, {}, "38 digits"),
        ({"p": V(decimal_value="12abc")}, {}, "finite decimal"),
        ({"p": V(date_value=date_pb2.Date(year=2023, month=2, day=29))}, {}, "invalid"),
        ({"p": V(uuid_value="not-a-uuid")}, {}, "invalid"),
        ({"p": V(timestamp_value=timestamp_pb2.Timestamp(seconds=2**40))}, {}, "out-of-range"),
    ],
)
def test_parameters_are_bounded_and_refused_with_invalid_argument(
    parameters: dict[str, common_pb2.Value], limits: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        to_parameters(parameters, **limits)
    assert fragment in caught.value.public_message


def test_depth_sixteen_is_allowed() -> None:
    assert to_parameters({"p": deep(16)})["p"] is not None
