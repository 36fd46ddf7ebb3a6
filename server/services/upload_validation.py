"""Is an uploaded file what its format says, and does it fit its table? (C19)

Checks run on a private local copy, in a worker thread, and either return
the file's row count or raise :class:`Rejected` with a reason a client may
read. They are the same checks whatever the file is named: content decides.

- Parquet: ``PAR1`` at both ends; the footer read by pyarrow; row count from
  the metadata (and equal to the sum of its row groups); the columns named and
  ordered like the table's, with compatible Arrow types.
- CSV: UTF-8 text (a BOM is allowed), a header row naming the table's columns
  in the table's order, the same number of fields on every row, no quoted line
  breaks (the engine's parallel reader refuses them), and the values of the
  first ``sample_rows`` rows parse as their column's type.
- JSON: one array of objects, or one object per line (NDJSON); every object
  has exactly the table's columns as keys, in order (the engine maps columns
  by position), with values of a compatible JSON type; integers must fit
  their column (pyarrow would silently turn a too-large one into a double).

The engine maps file columns to table columns by position, never by name,
so the name and order checks are what keep a file from loading into the
wrong columns. ``SERIAL`` columns are generated and must not be in a file.

Security: the files are untrusted. Nothing here executes or evaluates their
content: Parquet is opened only for its footer (bounded by the file size,
which the upload policy already bounded), CSV and JSON are decoded strictly
and streamed line by line (or array element by element) with a length cap
read before a longer record is held, so memory stays bounded whatever the
file holds; CSV fields are also capped by the ``csv`` module (128 KiB).
Messages quote line numbers and column names of the table, never file
content.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

#: Bytes examined to recognise the content.
HEAD_BYTES = 64 * 1024
_CHUNK_CHARS = 1024 * 1024

#: Leading bytes of common formats that are not the declared one.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "Parquet"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
)

_INTEGER_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "INT128": (-(2**127), 2**127 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_FLOATS = frozenset({"FLOAT", "DOUBLE"})
_BOOLEANS = frozenset({"BOOL", "BOOLEAN"})
_CSV_BOOLEAN_WORDS = frozenset({"true", "false", "t", "f", "1", "0"})
_DATE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})")
# At most 40 digits: enough for INT128, and far below Python's int() digit limit.
_INTEGER_TEXT = re.compile(r"\s*-?\d{1,40}\s*")


class Rejected(Exception):
    """The file is not acceptable; ``str()`` is the reason shown to the client."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column a file must provide."""

    name: str
    type: str
    primary_key: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    """The target table: the columns a file must hold, in order (``SERIAL`` ones left out)."""

    name: str
    columns: tuple[ColumnSpec, ...]

    @property
    def names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]


@dataclass(frozen=True, slots=True)
class Checks:
    """How much a validation may look at."""

    max_rows: int
    sample_rows: int = 1000
    max_record_bytes: int = 1024 * 1024


def recognised_as(head: bytes) -> str | None:
    """What well-known binary format ``head`` starts with, if any."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _base_type(engine_type: str) -> str:
    # DECIMAL(10,2), STRING[] and STRUCT(...) keep only their leading word.
    return re.split(r"[\[(\s]", engine_type.strip().upper(), maxsplit=1)[0]


def _too_many(limit: int) -> Rejected:
    return Rejected(f"the file has more than {limit} rows, the per-file row limit")


def _no_rows() -> Rejected:
    return Rejected("the file holds no rows")


def _header_mismatch(table: TableSpec) -> Rejected:
    return Rejected(
        f"the columns must be exactly those of table {table.name}, in this order: "
        + ", ".join(table.names)
    )


# --- Parquet -------------------------------------------------------------------


def _arrow_fits(engine_type: str, arrow_type: Any) -> bool:
    import pyarrow as pa

    base = _base_type(engine_type)
    if pa.types.is_null(arrow_type):
        return True
    if base in _INTEGER_RANGES:
        return bool(pa.types.is_integer(arrow_type))
    if base in _FLOATS or base == "DECIMAL":
        return bool(
            pa.types.is_floating(arrow_type)
            or pa.types.is_integer(arrow_type)
            or pa.types.is_decimal(arrow_type)
        )
    if base in _BOOLEANS:
        return bool(pa.types.is_boolean(arrow_type))
    if base == "STRING":
        return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))
    if base in {"DATE", "TIMESTAMP"}:
        return bool(pa.types.is_temporal(arrow_type) or pa.types.is_string(arrow_type))
    return True  # nested and rarer types: the engine decides, all or nothing


def validate_parquet(path: Path, table: TableSpec, checks: Checks) -> int:
    """Row count of a Parquet file that fits ``table``; raises :class:`Rejected`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        handle.seek(-min(4, len(head)), 2)
        tail = handle.read(4)
    found = recognised_as(head)
    if found != "Parquet":
        raise Rejected(
            f"the content is {found}, not Parquet" if found else "the content is not Parquet"
        )
    if path.stat().st_size < 12 or tail != b"PAR1":
        raise Rejected("the content is not Parquet (no PAR1 footer)")
    try:
        parquet = pq.ParquetFile(path)
        metadata = parquet.metadata
        schema = parquet.schema_arrow
        group_rows = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    except (pa.ArrowException, OSError, ValueError) as error:
        raise Rejected("the Parquet metadata cannot be read") from error
    rows = int(metadata.num_rows)
    if rows < 0 or group_rows != rows:
        raise Rejected("the Parquet metadata is inconsistent (row groups disagree)")
    if rows > checks.max_rows:
        raise _too_many(checks.max_rows)
    if rows == 0:
        raise _no_rows()
    if list(schema.names) != table.names:
        raise _header_mismatch(table)
    for column, field in zip(table.columns, schema, strict=True):
        if not _arrow_fits(column.type, field.type):
            raise Rejected(
                f"column {column.name}: Parquet type {field.type} does not fit {column.type}"
            )
    return rows


# --- CSV -------------------------------------------------------------------------


def _csv_value_error(column: ColumnSpec, text: str) -> str | None:
    """Why ``text`` cannot be a value of ``column`` (None when it can, or when unsure)."""
    value = text.strip()
    if value == "":
        return "the primary key is empty" if column.primary_key else None
    base = _base_type(column.type)
    if base in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[base]
        if not _INTEGER_TEXT.fullmatch(value) or not low <= int(value) <= high:
            return f"not a valid {base} value (an integer in range)"
    elif base in _FLOATS:
        try:
            float(value)
        except ValueError:
            return f"not a valid {base} value (a number)"
    elif base in _BOOLEANS:
        if value.lower() not in _CSV_BOOLEAN_WORDS:
            return "not a valid BOOL value (true or false)"
    elif base in {"DATE", "TIMESTAMP"} and not _starts_with_date(value):
        return f"not a valid {base} value (YYYY-MM-DD…)"
    return None


def _starts_with_date(value: str) -> bool:
    match = _DATE.match(value)
    try:
        return match is not None and bool(dt.date.fromisoformat(match.group(1)))
    except ValueError:
        return False


def validate_csv(path: Path, table: TableSpec, checks: Checks) -> int:
    """Data rows of a CSV file with a header that fits ``table``; raises :class:`Rejected`."""
    with path.open("rb") as raw:
        head = raw.read(HEAD_BYTES)
    found = recognised_as(head)
    if found is not None:
        raise Rejected(f"the content is {found}, not CSV")
    if b"\x00" in head:
        raise Rejected("the content is binary, not CSV text")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return _csv_rows(_lines(handle, checks.max_record_bytes), table, checks)
    except UnicodeDecodeError as error:
        raise Rejected("the content is not UTF-8 text") from error
    except csv.Error as error:
        raise Rejected(f"the CSV cannot be parsed: {error}") from error


def _csv_rows(lines: Iterator[str], table: TableSpec, checks: Checks) -> int:
    reader = csv.reader(lines, strict=True)
    header = next(reader, None)
    if header is None:
        raise Rejected("the file is empty: a header row is required")
    if [name.strip() for name in header] != table.names:
        raise _header_mismatch(table)
    width = len(header)
    rows = 0
    line = reader.line_num
    for record in reader:
        if not record:  # a blank line: the engine skips it too
            line = reader.line_num
            continue
        if reader.line_num - line > 1:
            raise Rejected(f"line {line + 1}: quoted line breaks are not supported")
        line = reader.line_num
        if len(record) != width:
            raise Rejected(f"line {line}: expected {width} fields, found {len(record)}")
        rows += 1
        if rows > checks.max_rows:
            raise _too_many(checks.max_rows)
        if rows <= checks.sample_rows:
            for column, text in zip(table.columns, record, strict=True):
                problem = _csv_value_error(column, text)
                if problem is not None:
                    raise Rejected(f"line {line}, column {column.name}: {problem}")
    if rows == 0:
        raise _no_rows()
    return rows


# --- JSON ------------------------------------------------------------------------


def _json_value_error(column: ColumnSpec, value: object) -> str | None:
    if value is None:
        return "the primary key is null" if column.primary_key else None
    base = _base_type(column.type)
    if base in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[base]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"not a valid {base} value (an integer in range)"
    elif base in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"not a valid {base} value (a number)"
    elif base in _BOOLEANS:
        if not isinstance(value, bool):
            return "not a valid BOOL value (true or false)"
    elif base in {"STRING", "DATE", "TIMESTAMP"} and not isinstance(value, str):
        return f"not a valid {base} value (a string)"
    return None


def _lines(handle: TextIO, limit: int) -> Iterator[str]:
    """Lines of at most ``limit`` characters; a longer one is refused before it is all read."""
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise Rejected(f"line {number} is longer than {limit} characters")
        yield line


def _ndjson_records(handle: TextIO, limit: int) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(_lines(handle, limit), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise Rejected(f"line {number}: not one complete JSON object") from error


def _array_records(handle: TextIO, limit: int) -> Iterator[tuple[int, object]]:
    """The elements of one JSON array, decoded one at a time with bounded memory."""
    decoder = json.JSONDecoder()
    buffer, position, ended = "", 0, False

    def fill() -> bool:
        nonlocal buffer, position, ended
        chunk = "" if ended else handle.read(_CHUNK_CHARS)
        ended = ended or not chunk
        buffer, position = buffer[position:] + chunk, 0
        return bool(chunk)

    def next_char() -> str:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                position += 1
            if position < len(buffer) or not fill():
                return buffer[position] if position < len(buffer) else ""

    if next_char() != "[":
        raise Rejected("the JSON is not an array of objects")
    position += 1
    index = 0
    while True:
        char = next_char()
        if char == "]" and index == 0:
            position += 1
            break
        if char != "{":
            raise Rejected(f"element {index + 1} is not a JSON object")
        while True:
            try:
                value, end = decoder.raw_decode(buffer, position)
                break
            except json.JSONDecodeError as error:
                if len(buffer) - position > limit:
                    raise Rejected(
                        f"element {index + 1} is longer than {limit} characters"
                    ) from error
                if not fill():
                    raise Rejected(f"element {index + 1} is not valid JSON") from error
        if end - position > limit:
            raise Rejected(f"element {index + 1} is longer than {limit} characters")
        position = end
        index += 1
        yield index, value
        char = next_char()
        position += 1
        if char == "]":
            break
        if char != ",":
            raise Rejected(f"after element {index}: expected ',' or ']'")
    if next_char() != "":
        raise Rejected("unexpected content after the JSON array")


def validate_json(path: Path, table: TableSpec, checks: Checks) -> int:
    """Objects in a JSON array or NDJSON file that fit ``table``; raises :class:`Rejected`."""
    with path.open("rb") as raw:
        head = raw.read(HEAD_BYTES)
    found = recognised_as(head)
    if found is not None:
        raise Rejected(f"the content is {found}, not JSON")
    start = head.lstrip(b" \t\r\n")[:1]
    if start not in (b"[", b"{"):
        raise Rejected("the content is not JSON (an array of objects, or one object per line)")
    records: Callable[[TextIO, int], Iterator[tuple[int, object]]] = (
        _array_records if start == b"[" else _ndjson_records
    )
    where = "element" if start == b"[" else "line"
    names = table.names
    rows = 0
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, record in records(handle, checks.max_record_bytes):
                if not isinstance(record, dict):
                    raise Rejected(f"{where} {number}: not a JSON object")
                if list(record) != names:
                    raise _header_mismatch(table)
                for column in table.columns:
                    problem = _json_value_error(column, record[column.name])
                    if problem is not None:
                        raise Rejected(f"{where} {number}, column {column.name}: {problem}")
                rows += 1
                if rows > checks.max_rows:
                    raise _too_many(checks.max_rows)
    except UnicodeDecodeError as error:
        raise Rejected("the content is not UTF-8 text") from error
    except ValueError as error:  # json's own limits, such as an integer of 5000 digits
        raise Rejected("the JSON cannot be parsed") from error
    except RecursionError as error:
        raise Rejected("the JSON is nested too deeply") from error
    if rows == 0:
        raise _no_rows()
    return rows


_VALIDATORS: dict[str, Callable[[Path, TableSpec, Checks], int]] = {
    "csv": validate_csv,
    "parquet": validate_parquet,
    "json": validate_json,
}


def validate(path: Path, file_format: str, table: TableSpec, checks: Checks) -> int:
    """The row count of a ``csv``, ``parquet`` or ``json`` file that fits ``table``.

    Raises :class:`Rejected` with a client-readable reason. Reads the whole
    file once for CSV and JSON, only its ends and footer for Parquet; run it
    in a thread.
    """
    return _VALIDATORS[file_format](path, table, checks)


def _first_columns(path: Path, file_format: str) -> list[str]:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if file_format == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return [name.strip() for name in next(csv.reader(handle), [])]
    with path.open("rb") as raw:
        array = raw.read(HEAD_BYTES).lstrip(b" \t\r\n")[:1] == b"["
    with path.open(encoding="utf-8", newline="") as handle:
        records = _array_records if array else _ndjson_records
        for _, record in records(handle, 2**31):
            return list(record) if isinstance(record, dict) else []
    return []


def still_fits(path: Path, file_format: str, table: TableSpec) -> None:
    """Check again, cheaply, that a validated file's columns are the table's.

    For ingest: the table may have been altered since validation, and the
    engine would load by position into whatever columns it has now. Reads
    only the header, the first record or the Parquet schema; raises
    :class:`Rejected`.
    """
    try:
        columns = _first_columns(path, file_format)
    except (OSError, ValueError, csv.Error) as error:
        raise Rejected("the file cannot be read again") from error
    if columns != table.names:
        raise Rejected(f"the columns of table {table.name} changed since validation")


def table_spec(name: str, columns: Sequence[tuple[str, str, bool]]) -> TableSpec:
    """A :class:`TableSpec` from ``(name, engine type, is primary key)`` triples."""
    return TableSpec(
        name=name,
        columns=tuple(ColumnSpec(n, t, pk) for n, t, pk in columns if _base_type(t) != "SERIAL"),
    )
