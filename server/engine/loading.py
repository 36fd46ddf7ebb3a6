"""Bulk loads: ``COPY`` of a worker-local file into one table, all or nothing.

``COPY`` is atomic in the engine (a bad row or a duplicate key leaves the
table as it was), so a load is one auto-commit statement queued behind the
graph's other writes. Into a node table that has rows, repeated primary
keys are refused before the ``COPY`` (:func:`refuse_repeated_keys`): there
the engine's rollback corrupts its heap. CSV (with a header) and Parquet
load natively; JSON needs an engine extension we do not install
(extensions are downloaded and are native code), so a JSON file is first
rewritten as Parquet beside itself, then loaded. The engine offers no progress hook: progress is
reported as bytes handed to the engine, before and after the ``COPY``.

Security: the path is named by the server, but it is still checked: an
absolute path, resolved (symlinks followed) inside the worker's data
directory, with no quote, backslash or control character, quoted as a
literal. The table must exist in the graph's catalog and is quoted with
backticks. Engine messages about a failing file quote its path and a line
of it; they are scrubbed like any other.

Runs in engine threads, except :func:`load`, which orders the steps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import ladybug

from graphgate.server.engine.catalog import rows, string_literal, table_kinds
from graphgate.server.engine.session import ONE_STATEMENT, Session, single
from graphgate.server.errors import FieldViolation, InvalidArgument, NotFound
from graphgate.worker.v1 import worker_pb2

_UNSAFE_PATH = re.compile(r"['\\\x00-\x1f\x7f]")
_COPIED = re.compile(r"^(\d+) tuples")

#: ``COPY`` options per format (the file's own name says nothing).
OPTIONS = {"csv": "(file_format='csv', header=true)", "parquet": "(file_format='parquet')"}
_FORMATS = {
    worker_pb2.FILE_FORMAT_CSV: "csv",
    worker_pb2.FILE_FORMAT_PARQUET: "parquet",
    worker_pb2.FILE_FORMAT_JSON: "json",
}
Send = Callable[[worker_pb2.LoadFileResponse], Awaitable[None]]


def _refuse(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        public_message=f"{field}: {description}",
        reason="INVALID_LOAD",
        violations=[FieldViolation(field, description)],
    )


def checked_source(path: str, data_dir: Path) -> Path:
    """The file to load, if it is a regular file inside ``data_dir``.

    Raises :class:`InvalidArgument` otherwise. Costs a ``realpath``.
    """
    candidate = Path(path)
    if not candidate.is_absolute() or _UNSAFE_PATH.search(path):
        raise _refuse("path", "must be an absolute path without quotes or control characters")
    resolved = candidate.resolve()
    if not resolved.is_relative_to(data_dir.resolve()) or not resolved.is_file():
        raise _refuse("path", "must name a file inside the data directory")
    return resolved


def checked_table(connection: ladybug.Connection, table: str) -> str:
    """The kind (``NODE`` or ``REL``) of the graph's table ``table`` (no backtick in it)."""
    if not table or "`" in table:
        raise _refuse("table", "is not a table name")
    kind = table_kinds(connection).get(table)
    if kind is None:
        raise NotFound(public_message=f"table {table} not found", reason="TABLE_NOT_FOUND")
    return kind


def json_as_parquet(source: Path) -> Path:
    """Rewrite a JSON file (one array, or one object per line) as Parquet beside it.

    Raises :class:`InvalidArgument` when it is not such JSON. Holds the whole
    file in memory once; the caller deletes the returned file. The Arrow
    table lives only in this frame, which has returned before any query runs.
    """
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    target = source.with_name(f".{source.name}.parquet")
    with source.open("rb") as handle:
        head = handle.read(4096).lstrip()
    try:
        if head.startswith(b"["):
            records = json.loads(source.read_bytes())
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise _refuse("path", "JSON must be an array of objects")
            table = pa.Table.from_pylist(records)
        else:
            table = pa_json.read_json(source)
    except (ValueError, pa.ArrowException) as error:
        raise _refuse("path", "is not valid JSON records") from error
    pq.write_table(table, target)
    return target


def _primary_key(connection: ladybug.Connection, table: str) -> tuple[int, str, str] | None:
    """A node table's primary key as (position among the file's columns, name, type).

    None for a SERIAL key (the engine numbers it; files leave it out).
    """
    position = 0
    for row in rows(connection, f"CALL table_info({string_literal(table)}) RETURN *"):
        name, kind, is_key = str(row[1]), str(row[2]), row[4] is True
        if is_key:
            return None if kind == "SERIAL" else (position, name, kind)
        if kind != "SERIAL":
            position += 1
    return None


def refuse_repeated_keys(
    connection: ladybug.Connection, table: str, source: Path, file_format: str
) -> None:
    """Refuse a file that repeats a primary key or holds one the node table ``table`` has.

    Only needed, and only run, when the table has rows: LadybugDB 0.22
    rolls such a ``COPY`` back but corrupts its heap doing so, and the
    worker crashes later (LADYBUG.md). Into an empty table the ``COPY``
    fails cleanly on its own. Costs up to three scans of the file, about
    half the ``COPY``'s time. Raises :class:`InvalidArgument`
    (``DUPLICATE_PRIMARY_KEY``).
    """
    key = _primary_key(connection, table)
    if key is None:
        return
    position, name, kind = key
    quoted = f"`{table}`"
    if not rows(connection, f"MATCH (n:{quoted}) RETURN 1 LIMIT 1"):
        return
    scan = f"LOAD FROM {string_literal(str(source))} {OPTIONS[file_format]}"
    result = single(connection.execute(f"{scan} RETURN * LIMIT 1", {ONE_STATEMENT: 0}))
    try:
        columns = result.get_column_names()
    finally:
        result.close()
    if position >= len(columns):
        return  # the COPY refuses the file's shape before it writes anything
    # Names go between backticks in the statements below: one holding a
    # backtick could end the identifier and add Cypher of its own.
    if "`" in columns[position] or "`" in name:
        raise _refuse("path", "a column name holds a backtick")
    value = f"cast(`{columns[position]}`, {string_literal(kind)})"
    [[total, keys, distinct]] = rows(
        connection, f"{scan} WITH {value} AS k RETURN count(*), count(k), count(DISTINCT k)"
    )
    [[clashes]] = rows(
        connection,
        f"{scan} WITH {value} AS k MATCH (n:{quoted}) WHERE n.`{name}` = k RETURN count(*)",
    )
    if total != keys:
        raise _refuse("path", f"a row has no value for the primary key {name}; nothing was loaded")
    if keys != distinct or clashes:
        raise InvalidArgument(
            public_message=(
                f"duplicated primary key: the file repeats a value of {name} or holds one "
                f"{table} already has; nothing was loaded"
            ),
            reason="DUPLICATE_PRIMARY_KEY",
            violations=[FieldViolation("path", f"repeats a value of the primary key {name}")],
        )


def copy_into(
    connection: ladybug.Connection, table: str, kind: str, source: Path, file_format: str
) -> int:
    """``COPY`` ``source`` into the graph's ``table`` of ``kind``; returns the rows loaded."""
    if kind == "NODE":
        refuse_repeated_keys(connection, table, source, file_format)
    statement = f"COPY `{table}` FROM {string_literal(str(source))} {OPTIONS[file_format]}"
    answer = rows(connection, statement)
    copied = _COPIED.match(str(answer[0][0])) if answer else None
    return int(copied.group(1)) if copied else 0


async def load(
    session: Session, request: worker_pb2.LoadFileRequest, data_dir: Path, send: Send
) -> None:
    """Check, then load one file in ``session``; progress and the row count go to ``send``.

    The ``COPY`` waits in the graph's write queue. Raises :class:`InvalidArgument`
    (format, path, data), :class:`NotFound` (table), or what the engine raised.
    """
    file_format = _FORMATS.get(request.file_format)
    if file_format is None:
        raise _refuse("file_format", "must be csv, parquet or json")
    source = checked_source(request.path, data_dir)
    size = source.stat().st_size
    table = request.table
    kind = await session.run(lambda: checked_table(session.connection(), table))
    await send(worker_pb2.LoadFileResponse(progress=worker_pb2.LoadProgress(bytes_total=size)))
    loadable, fmt = source, file_format
    try:
        if fmt == "json":
            loadable = await session.run(lambda: json_as_parquet(source))
            fmt = "parquet"
        rows = await session.run_writing(
            lambda: copy_into(session.connection(), table, kind, loadable, fmt)
        )
    finally:
        if loadable != source:
            loadable.unlink(missing_ok=True)
    done = worker_pb2.LoadProgress(bytes_done=size, bytes_total=size)
    await send(worker_pb2.LoadFileResponse(progress=done))
    await send(worker_pb2.LoadFileResponse(rows_loaded=rows))
