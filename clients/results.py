"""Query results: a whole :class:`QueryResult`, or rows streamed as they come.

:class:`RowStream` and :class:`AsyncRowStream` wrap a ``StreamQuery`` call.
Abandoning one cancels the call on the server, so a half-read result never
keeps a graph worker busy: leaving a ``with`` block, ``close()``/``aclose()``,
or the stream being garbage-collected (a ``for`` loop left by ``break`` over
``client.stream(...)`` drops the last reference at once in CPython).

Arrow and pandas are optional: :meth:`QueryResult.to_arrow` imports pyarrow
only when called.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from graphgate.clients.errors import from_rpc_error
from graphgate.clients.models import Column, QueryClass
from graphgate.clients.values import from_values, plain
from graphgate.v1 import graph_pb2

if TYPE_CHECKING:
    import pyarrow

#: Engine type names whose Arrow type is known up front; others are inferred.
_ARROW_TYPES = {
    "BOOL": "bool_",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "SERIAL": "int64",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "STRING": "string",
    "BLOB": "binary",
    "DATE": "date32",
    "INTERVAL": "duration",
}


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """The last message of a stream: totals and the firewall's class."""

    row_count: int
    truncated: bool
    query_class: QueryClass
    execution_time_ms: float

    @classmethod
    def from_proto(cls, m: graph_pb2.StreamSummary) -> StreamSummary:
        """Build from a ``graphgate.v1.StreamSummary``."""
        return cls(
            m.row_count, m.truncated, QueryClass.from_proto(m.query_class), m.execution_time_ms
        )


@dataclass(slots=True)
class QueryResult:
    """The rows of one statement, as Python values.

    ``rows`` holds one list per row, cells in column order. ``truncated`` is
    True when the server's row limit cut the result (use ``client.stream``
    for everything).
    """

    columns: list[Column]
    rows: list[list[Any]]
    truncated: bool = False
    query_class: QueryClass = QueryClass.UNSPECIFIED
    execution_time_ms: float = 0.0
    row_count: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.row_count < 0:
            self.row_count = len(self.rows)

    @classmethod
    def from_proto(cls, m: graph_pb2.ExecuteQueryResponse) -> QueryResult:
        """Build from a ``graphgate.v1.ExecuteQueryResponse``."""
        return cls(
            columns=[Column(c.name, c.type) for c in m.columns],
            rows=[from_values(r.values) for r in m.rows],
            truncated=m.truncated,
            query_class=QueryClass.from_proto(m.query_class),
            execution_time_ms=m.execution_time_ms,
            row_count=m.row_count,
        )

    @property
    def column_names(self) -> list[str]:
        """The columns' names, in order."""
        return [c.name for c in self.columns]

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        names = self.column_names
        return [dict(zip(names, row, strict=False)) for row in self.rows]

    def scalar(self) -> Any:
        """The first cell of the first row (None for an empty result)."""
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def to_arrow(self) -> pyarrow.Table:
        """The result as a ``pyarrow.Table`` (needs ``pip install pyarrow``).

        Scalar engine types map to their Arrow types; nodes, relationships,
        paths, lists and maps become Arrow structs and lists by inference; a
        column Arrow cannot type (UUIDs, integers beyond 64 bits, mixed kinds)
        becomes text.
        """
        try:
            import pyarrow as pa
        except ImportError as exc:  # pragma: no cover - pyarrow is installed in tests
            raise ImportError("QueryResult.to_arrow() needs pyarrow: pip install pyarrow") from exc
        arrays = []
        for index, column in enumerate(self.columns):
            cells = [plain(row[index]) if index < len(row) else None for row in self.rows]
            arrays.append(_arrow_array(pa, cells, column.type))
        return pa.table(arrays, names=self.column_names)

    def to_pandas(self) -> Any:
        """The result as a ``pandas.DataFrame`` (needs pandas and pyarrow).

        Typed ``Any`` so that type-checking the SDK never needs pandas.
        """
        if importlib.util.find_spec("pandas") is None:
            raise ImportError("QueryResult.to_pandas() needs pandas: pip install pandas")
        return self.to_arrow().to_pandas()


def _arrow_array(pa: Any, cells: list[Any], engine_type: str) -> Any:
    name = _ARROW_TYPES.get(engine_type.upper())
    if name is not None:
        arrow_type = pa.duration("us") if name == "duration" else getattr(pa, name)()
        try:
            return pa.array(cells, type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # the engine's name did not match the values: infer instead
    try:
        return pa.array(cells)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        pass
    if all(c is None or (isinstance(c, int) and not isinstance(c, bool) and c >= 0) for c in cells):
        try:
            return pa.array(cells, type=pa.uint64())
        except OverflowError:
            pass
    # Values Arrow cannot hold as one type (UUIDs, 128-bit integers, mixed
    # kinds) become their text, losslessly, rather than failing the whole table.
    return pa.array([None if c is None else str(c) for c in cells], type=pa.string())


class _RowBuffer:
    """What both stream kinds do with each message."""

    def __init__(self) -> None:
        self.columns: list[Column] | None = None
        self.summary: StreamSummary | None = None
        self.pending: deque[list[Any]] = deque()

    def take(self, message: graph_pb2.StreamQueryResponse) -> None:
        if message.columns and self.columns is None:
            self.columns = [Column(c.name, c.type) for c in message.columns]
        part = message.WhichOneof("part")
        if part == "batch":
            self.pending.extend(from_values(r.values) for r in message.batch.rows)
        elif part == "summary":
            self.summary = StreamSummary.from_proto(message.summary)

    def result(self, rows: list[list[Any]]) -> QueryResult:
        summary = self.summary
        return QueryResult(
            columns=self.columns or [],
            rows=rows,
            truncated=summary.truncated if summary else False,
            query_class=summary.query_class if summary else QueryClass.UNSPECIFIED,
            execution_time_ms=summary.execution_time_ms if summary else 0.0,
        )


class RowStream:
    """Rows of a ``StreamQuery`` call, read as they arrive (sync).

    Iterate it for rows (lists of Python values); :attr:`columns` is known
    after the first message, :attr:`summary` after the last. Use it as a
    context manager, or call :meth:`close`, to cancel a call you stop reading.
    """

    def __init__(self, start: Callable[[], Any], request_id: str) -> None:
        self._start = start
        self._call: Any = None
        self._request_id = request_id
        self._buffer = _RowBuffer()
        self._finished = False

    def __enter__(self) -> RowStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> list[Any]:
        while not self._buffer.pending:
            if self._finished or not self._read():
                raise StopIteration
        return self._buffer.pending.popleft()

    @property
    def columns(self) -> list[Column]:
        """The result's columns (reads the first message if needed)."""
        while self._buffer.columns is None and not self._finished and self._read():
            pass
        return self._buffer.columns or []

    @property
    def summary(self) -> StreamSummary | None:
        """The totals, once the stream has been read to its end."""
        return self._buffer.summary

    def _read(self) -> bool:
        if self._call is None:
            self._call = self._start()
        try:
            message = next(self._call)
        except StopIteration:
            self._finished = True
            return False
        except grpc.RpcError as exc:
            self._finished = True
            raise from_rpc_error(exc, request_id=self._request_id) from exc
        self._buffer.take(message)
        return True

    def collect(self) -> QueryResult:
        """Read every remaining row into a :class:`QueryResult`."""
        rows = list(self)
        return self._buffer.result(rows)

    def close(self) -> None:
        """Stop reading; cancels the server call if it is still running."""
        if not self._finished:
            self._finished = True
            if self._call is not None:
                self._call.cancel()
        self._buffer.pending.clear()


class AsyncRowStream:
    """Rows of a ``StreamQuery`` call, read as they arrive (asyncio).

    ``async for row in client.stream(...)``; use ``async with`` or
    :meth:`aclose` to cancel a call you stop reading.
    """

    def __init__(
        self, start: Callable[[], Awaitable[aio.UnaryStreamCall[Any, Any]]], request_id: str
    ) -> None:
        self._start = start
        self._call: aio.UnaryStreamCall[Any, Any] | None = None
        self._request_id = request_id
        self._buffer = _RowBuffer()
        self._finished = False

    async def __aenter__(self) -> AsyncRowStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._finished and self._call is not None:
            with contextlib.suppress(Exception):
                self._call.cancel()

    def __aiter__(self) -> AsyncRowStream:
        return self

    async def __anext__(self) -> list[Any]:
        while not self._buffer.pending:
            if self._finished or not await self._read():
                raise StopAsyncIteration
        return self._buffer.pending.popleft()

    async def columns(self) -> list[Column]:
        """The result's columns (reads the first message if needed)."""
        while self._buffer.columns is None and not self._finished and await self._read():
            pass
        return self._buffer.columns or []

    @property
    def summary(self) -> StreamSummary | None:
        """The totals, once the stream has been read to its end."""
        return self._buffer.summary

    async def _read(self) -> bool:
        if self._call is None:
            self._call = await self._start()
        try:
            message: Any = await self._call.read()
        except grpc.RpcError as exc:
            self._finished = True
            raise from_rpc_error(exc, request_id=self._request_id) from exc
        if message is aio.EOF:
            self._finished = True
            return False
        self._buffer.take(message)
        return True

    async def collect(self) -> QueryResult:
        """Read every remaining row into a :class:`QueryResult`."""
        rows = [row async for row in self]
        return self._buffer.result(rows)

    async def aclose(self) -> None:
        """Stop reading; cancels the server call if it is still running."""
        if not self._finished:
            self._finished = True
            if self._call is not None:
                self._call.cancel()
        self._buffer.pending.clear()
