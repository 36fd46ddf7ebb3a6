"""The SDK's value mapping: Python objects to ``graphgate.v1.Value`` and back."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any

import pytest

from graphgate.clients import Node, Path, QueryResult, Relationship
from graphgate.clients.models import Column, QueryClass
from graphgate.clients.values import from_value, plain, to_parameters, to_value
from graphgate.v1 import common_pb2

ROUND_TRIPS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    2**64 - 1,
    1.5,
    -0.0,
    "",
    "grüße ✓",
    b"",
    b"\x00\x01\xff",
    dt.date(1, 1, 1),
    dt.date(9999, 12, 31),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=dt.UTC),
    dt.timedelta(0),
    dt.timedelta(days=3, seconds=5, microseconds=7),
    dt.timedelta(microseconds=-1),
    dt.timedelta(days=-2, seconds=10),
    decimal.Decimal("0.1"),
    decimal.Decimal("-12345678901234567890.123456789"),
    uuid.UUID("00000000-0000-0000-0000-000000000001"),
    [],
    [1, "a", None, [2.5, [True]]],
    {},
    {"a": 1, "b": {"c": [1, 2]}},
    Node("0:0", "Person", {"name": "Ada", "born": 1815}),
    Relationship("1:3", "KNOWS", "0:0", "0:1", {"since": dt.date(1833, 6, 5)}),
    Path(),
    Path(
        (Node("0:0", "Person"), Node("0:1", "Person")),
        (Relationship("1:3", "KNOWS", "0:0", "0:1"),),
    ),
]


@pytest.mark.parametrize("obj", ROUND_TRIPS, ids=repr)
def test_round_trip_is_exact(obj: Any) -> None:
    back = from_value(common_pb2.Value.FromString(to_value(obj).SerializeToString()))
    assert back == obj
    assert type(back) is type(obj)


def test_ints_choose_the_exact_kind() -> None:
    assert to_value(2**63 - 1).WhichOneof("kind") == "int_value"
    assert to_value(2**63).WhichOneof("kind") == "uint_value"
    assert to_value(2**64).WhichOneof("kind") == "decimal_value"
    assert from_value(to_value(2**100)) == decimal.Decimal(2**100)
    with pytest.raises(ValueError, match="128 bits"):
        to_value(2**128)


def test_bool_is_not_an_int_and_tuples_are_lists() -> None:
    assert to_value(True).WhichOneof("kind") == "bool_value"
    assert from_value(to_value((1, 2))) == [1, 2]


def test_timestamps_are_aware_and_utc() -> None:
    local = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    back = from_value(to_value(local))
    assert back == local
    assert back.tzinfo == dt.UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        to_value(dt.datetime(2024, 1, 1))


def test_nanoseconds_are_cut_to_microseconds() -> None:
    value = common_pb2.Value()
    value.timestamp_value.seconds, value.timestamp_value.nanos = 1, 1_999
    assert from_value(value) == dt.datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=dt.UTC)
    value = common_pb2.Value()
    value.interval_value.seconds, value.interval_value.nanos = -1, -500_999
    assert from_value(value) == dt.timedelta(seconds=-1, microseconds=-500)


def test_unset_and_null_are_none() -> None:
    assert from_value(common_pb2.Value()) is None
    assert to_value(None).WhichOneof("kind") == "null_value"


def test_floats_keep_specials() -> None:
    assert math.isnan(from_value(to_value(float("nan"))))
    assert from_value(to_value(float("-inf"))) == float("-inf")


def test_refusals_name_the_problem() -> None:
    with pytest.raises(TypeError, match="set"):
        to_value({1, 2})
    with pytest.raises(TypeError, match="map keys"):
        to_value({1: "a"})
    with pytest.raises(ValueError, match="finite"):
        to_value(decimal.Decimal("NaN"))
    with pytest.raises(TypeError, match="parameter 'x'"):
        to_parameters({"x": object()})


def test_numbers_of_other_libraries_convert() -> None:
    class Count:  # an integral that is not an int, like numpy.int64
        def __index__(self) -> int:
            return 7

    import numbers

    numbers.Integral.register(Count)
    assert from_value(to_value(Count())) == 7
    assert from_value(to_value(decimal.Decimal(3))) == decimal.Decimal(3)


def test_graph_values_read_like_mappings() -> None:
    node = Node("0:0", "Person", {"name": "Ada"})
    assert node["name"] == "Ada"
    path = Path((node,), ())
    assert len(path) == 0
    assert path.start == path.end == node
    assert Path().start is None
    assert plain(path) == {"nodes": [plain(node)], "relationships": []}


def test_query_result_helpers_and_arrow() -> None:
    result = QueryResult(
        columns=[
            Column("name", "STRING"),
            Column("born", "INT64"),
            Column("p", "NODE"),
            Column("big", "UINT64"),
            Column("id", "UUID"),
        ],
        rows=[
            ["Ada", 1815, Node("0:0", "Person", {"name": "Ada"}), 2**64 - 1, uuid.UUID(int=1)],
            ["Alan", None, Node("0:1", "Person", {"name": "Alan"}), 0, None],
        ],
        query_class=QueryClass.READ,
    )
    assert result.row_count == 2
    assert len(result) == 2
    assert result.scalar() == "Ada"
    assert result.records()[1]["name"] == "Alan"
    table = result.to_arrow()
    assert table.column("born").type == "int64"
    assert table.column("big").type == "uint64"
    # Arrow's uuid type where pyarrow has one, else the text: either way exact.
    first, second = table.column("id").to_pylist()
    assert (str(first), second) == (str(uuid.UUID(int=1)), None)
    assert table.column("p").to_pylist()[0]["properties"] == {"name": "Ada"}


def test_to_pandas_when_installed() -> None:
    pytest.importorskip("pandas")
    frame = QueryResult([Column("n", "INT64")], [[1], [2]]).to_pandas()
    assert list(frame["n"]) == [1, 2]
