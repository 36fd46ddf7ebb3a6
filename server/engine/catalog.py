"""A graph's schema: read it from the catalog, change it all or nothing.

Changes run in one explicit write transaction. The engine ends a transaction
silently on binder and runtime errors (not on parser errors), and any
statement after that would auto-commit, so the run stops at the first
failure and ends the transaction itself before the graph's next write.

As a second wall behind the firewall (which lets only schema statements
through), every statement must answer like DDL does, with a single
``result`` column: a data write or a transaction statement does not, and
the whole change is rolled back.

Security: table names come from the catalog but were chosen by graph admins;
where the engine needs them as literals (``table_info``) they are quoted with
the engine's backslash escapes, never spliced raw.

Runs in engine threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import ladybug

from graphgate.server.engine.failures import engine_failure
from graphgate.server.engine.session import ONE_STATEMENT, single
from graphgate.server.errors import FieldViolation, GraphgateError, InvalidArgument
from graphgate.v1 import graph_pb2


def string_literal(text: str) -> str:
    """``text`` as an engine string literal (backslash escapes only)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rows(connection: ladybug.Connection, query: str) -> list[list[object]]:
    """All rows of one internal statement (no parameters, small results)."""
    result = single(connection.execute(query, {ONE_STATEMENT: 0}))
    try:
        return [list(row) for row in result.get_all()]
    finally:
        result.close()


def table_kinds(connection: ladybug.Connection) -> dict[str, str]:
    """Each node or relationship table's name and kind (``NODE`` or ``REL``), by name."""
    listed = rows(connection, "CALL show_tables() RETURN *")
    return {
        str(row[1]): str(row[2])
        for row in sorted(listed, key=lambda row: str(row[1]))
        if row[2] in ("NODE", "REL")
    }


def read_schema(connection: ladybug.Connection) -> list[graph_pb2.Table]:
    """The graph's node and relationship tables, by name. Costs 1 + 2 per table statements."""
    tables: list[graph_pb2.Table] = []
    for name, kind in table_kinds(connection).items():
        table = graph_pb2.Table(name=name, kind=kind)
        for row in rows(connection, f"CALL table_info({string_literal(name)}) RETURN *"):
            table.columns.add(name=str(row[1]), type=str(row[2]))
            if kind == "NODE" and row[4] is True:
                table.primary_key = str(row[1])
        if kind == "REL":
            pairs = rows(connection, f"CALL show_connection({string_literal(name)}) RETURN *")
            # A relationship table may connect several pairs; list each side once, in order.
            table.source_table = ",".join(dict.fromkeys(str(p[0]) for p in pairs))
            table.destination_table = ",".join(dict.fromkeys(str(p[1]) for p in pairs))
        tables.append(table)
    return tables


def _statement_error(index: int, error: GraphgateError) -> GraphgateError:
    if not isinstance(error, InvalidArgument):
        return error
    message = f"statement {index + 1}: {error.public_message}"
    return InvalidArgument(
        public_message=message,
        reason=error.reason,
        detail=error.detail,
        violations=[FieldViolation(f"statements[{index}]", error.public_message)],
    )


def apply_schema(
    connection: ladybug.Connection, statements: Sequence[str], *, literals: Iterable[str]
) -> None:
    """Run ``statements`` in one write transaction: all of them, or none.

    Raises :class:`InvalidArgument` naming the first failing statement (the
    engine's scrubbed message), or another :class:`GraphgateError` from
    :func:`engine_failure`. Costs one statement each, plus BEGIN and COMMIT.
    """
    connection.execute("BEGIN TRANSACTION")
    try:
        for index, statement in enumerate(statements):
            try:
                result = single(connection.execute(statement, {ONE_STATEMENT: 0}))
            except Exception as error:
                raise _statement_error(index, engine_failure(error, literals=literals)) from None
            names = result.get_column_names()
            result.close()
            if names != ["result"]:
                refused = InvalidArgument(
                    public_message="not a schema statement", reason="NOT_SCHEMA_STATEMENT"
                )
                raise _statement_error(index, refused)
        connection.execute("COMMIT")
    except BaseException:
        # Binder and runtime errors end the transaction, parser errors do not,
        # and an interrupt may land anywhere: end it here, before the write
        # queue moves on (a transaction left open would refuse the next writer).
        with contextlib.suppress(RuntimeError):
            connection.execute("ROLLBACK")
        raise
