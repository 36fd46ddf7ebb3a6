"""Rows out of an engine result, within the row and byte limits.

The engine materializes a whole result inside its buffer pool before the
first row can be read (a result larger than the pool fails with
``QUERY_MEMORY_EXCEEDED``), so the engine side of a result is bounded by the
pool. What these functions bound is the *Python and wire* side: rows are
converted one at a time into the message being built, and reading stops at
the row limit or at the byte limit.

Byte limit of a whole result (``ExecuteQuery``): the result is **cut and
marked truncated**, like at the row limit, never failed: the client gets the
rows that fit and knows there were more (``StreamQuery`` gets all). A single
row larger than the limit yields zero rows and ``truncated``. In a stream
the byte limit only closes a batch; the next batch goes on.

Runs in engine threads (the conversion needs the GIL, not the loop).
"""

from __future__ import annotations

from typing import Any

import ladybug

from graphgate.server.engine.values import column_fillers
from graphgate.v1 import graph_pb2


def columns(result: ladybug.QueryResult) -> list[graph_pb2.Column]:
    """The result's columns with the engine's type names."""
    names = result.get_column_names()
    types = result.get_column_data_types()
    return [graph_pb2.Column(name=n, type=t) for n, t in zip(names, types, strict=True)]


class RowReader:
    """Reads rows of one result into messages; keeps the count across batches."""

    def __init__(self, result: ladybug.QueryResult, *, row_limit: int) -> None:
        self._result = result
        self._fillers = column_fillers(result.get_column_data_types())
        self._left = row_limit
        self.rows_read = 0
        self.truncated = False
        self.exhausted = False

    def read_into(self, rows: Any, *, max_rows: int, max_bytes: int, cut: bool) -> int:
        """Append up to ``max_rows`` rows to the repeated ``Row`` field ``rows``.

        With ``cut`` (a whole result), a row that would take the appended size
        past ``max_bytes`` is dropped and the result marked truncated. Without
        it (one batch of a stream), the batch closes once it holds
        ``max_bytes`` and the next batch goes on. Either way reading stops at
        the row limit, marking truncated when the result has more. Returns
        the bytes appended.
        """
        size = 0
        appended = 0
        result, fillers = self._result, self._fillers
        while True:
            # The end and the row limit are checked before the batch bounds, so a
            # result that ends exactly at a batch or limit boundary is known as such.
            if not result.has_next():
                self.exhausted = True
                break
            if self._left <= 0:
                self.truncated = True
                break
            if appended >= max_rows or (not cut and size >= max_bytes):
                break
            row = rows.add()
            values = row.values
            for filler, value in zip(fillers, result.get_next(), strict=True):
                filler(values.add(), value)
            row_size = row.ByteSize()
            if cut and size + row_size > max_bytes:
                del rows[-1]
                self.truncated = True
                break
            size += row_size
            appended += 1
            self._left -= 1
        self.rows_read += appended
        return size

    @property
    def finished(self) -> bool:
        """True once nothing more will be read (end of result or a limit)."""
        return self.exhausted or self.truncated
