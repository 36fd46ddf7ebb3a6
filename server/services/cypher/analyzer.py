"""``analyze``: from query text to an :class:`~.model.Analysis`, or a refusal.

Security: the order of checks is size, then one lexer pass over the whole
text, then the statement count on the token stream (a ``;`` inside a string,
comment or backticks is not a token, so it never counts), then the parse.
Any failure refuses the query with :class:`~graphgate.server.errors.QueryRefused`
(audited as ``injection_attempt``); the public message names a position and a
fixed description, never the query text.
"""

from __future__ import annotations

from graphgate.server.errors import QueryRefused

from .lexer import Lexed, lex, token_offsets
from .model import Analysis, CypherSyntaxError, Decided, Findings, QueryClass, TooComplex
from .statements import StatementParser

#: Default ceiling on a query's UTF-8 size (C15).
MAX_QUERY_BYTES = 100_000


def analyze(query: str, *, max_bytes: int = MAX_QUERY_BYTES) -> Analysis:
    """Classify exactly one Cypher statement.

    Raises :class:`QueryRefused` with ``reason`` ``QUERY_TOO_LARGE`` (over
    ``max_bytes`` in UTF-8), ``EMPTY_QUERY`` (only whitespace and comments),
    ``MULTIPLE_STATEMENTS`` (anything but whitespace and comments after a
    ``;``), ``QUERY_ANALYSIS_FAILED`` (text the firewall does not
    understand) or ``QUERY_TOO_COMPLEX`` (beyond the parser budgets of
    :mod:`.expressions`, which also keep the engine's parser, binder and
    planner from overflowing their stacks or planning for seconds). BULK and
    ADMIN statements are *returned*, not refused: :func:`authorize` refuses
    them, so callers can audit with the class known. Pure and thread-safe;
    about 30 µs for a typical 200-character query.
    """
    if not isinstance(query, str):
        raise _refused("QUERY_ANALYSIS_FAILED", "the query must be text")
    if len(query) > max_bytes or _utf8_size(query) > max_bytes:
        raise _refused("QUERY_TOO_LARGE", f"the query exceeds {max_bytes} bytes")
    try:
        lexed = lex(query)
    except CypherSyntaxError as err:
        raise _syntax_refusal(query, err) from None
    parameters = lexed.parameters
    findings = Findings()
    try:
        StatementParser(_single_statement(lexed), findings).statement()
    except Decided as decided:
        return Analysis(
            query_class=decided.query_class,
            reasons=(decided.reason,),
            parameters=parameters,
            statement=decided.statement,
            functions=frozenset(findings.functions),
            table_functions=frozenset(findings.table_functions),
        )
    except CypherSyntaxError as err:
        raise _syntax_refusal(query, err) from None
    except RecursionError:  # MAX_DEPTH should make this unreachable
        raise _refused("QUERY_TOO_COMPLEX", "the query is nested too deeply") from None
    query_class, reasons = _classify(findings)
    return Analysis(
        query_class=query_class,
        reasons=reasons,
        parameters=parameters,
        statement=findings.statement,
        functions=frozenset(findings.functions),
        table_functions=frozenset(findings.table_functions),
    )


def _classify(findings: Findings) -> tuple[QueryClass, tuple[str, ...]]:
    """READ, WRITE, MIXED or SCHEMA_DDL from what a parsed statement does.

    WRITE: changes data and reads no stored data beyond what it writes
    (``CREATE``, ``MERGE`` and ``UNWIND $rows … CREATE``, ``RETURN
    nextval('s')``). MIXED: changes data *and* reads stored data, through
    ``MATCH``/``OPTIONAL MATCH``, a catalog ``CALL``, an ``EXISTS``/``COUNT``
    subquery or a pattern expression (``MATCH … SET``, ``MATCH … CREATE …
    RETURN``).
    """
    reads = tuple(f"reads data: {name}" for name in dict.fromkeys(findings.reads))
    writes = tuple(f"writes data: {name}" for name in dict.fromkeys(findings.writes))
    if findings.schema:
        schema = tuple(f"changes the schema: {name}" for name in findings.schema)
        return QueryClass.SCHEMA_DDL, schema + writes
    if writes:
        return (QueryClass.MIXED if reads else QueryClass.WRITE), reads + writes
    return QueryClass.READ, reads or ("reads no stored data",)


def _single_statement(lexed: Lexed) -> Lexed:
    """The one statement of ``lexed``, without a trailing ``;``."""
    keys = lexed.keys
    if lexed.semicolons:
        # Only a last ";" (before the end marker) is allowed: nothing but
        # whitespace and comments may follow it.
        if lexed.semicolons > 1 or keys[-2] != ";":
            raise _refused("MULTIPLE_STATEMENTS", "exactly one statement per request")
        keys = [*keys[:-2], ""]
        lexed = lexed._replace(keys=keys, semicolons=0)
    if len(keys) == 1:
        raise _refused("EMPTY_QUERY", "the query is empty")
    return lexed


def _utf8_size(query: str) -> int:
    if query.isascii():
        return len(query)
    try:
        return len(query.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates: the lexer refuses them too
        return len(query.encode("utf-8", "surrogatepass"))


def _syntax_refusal(query: str, err: CypherSyntaxError) -> QueryRefused:
    if err.token >= 0:
        offsets = token_offsets(query, upto=err.token)
        err.offset = offsets[min(err.token, len(offsets) - 1)]
    line = query.count("\n", 0, err.offset) + 1
    column = err.offset - query.rfind("\n", 0, err.offset)
    where = f"line {line}, column {column}"
    return _refused(
        "QUERY_TOO_COMPLEX" if isinstance(err, TooComplex) else "QUERY_ANALYSIS_FAILED",
        f"{err.message} at {where}",
        {"line": str(line), "column": str(column)},
    )


def _refused(reason: str, message: str, metadata: dict[str, str] | None = None) -> QueryRefused:
    return QueryRefused(
        public_message=f"query refused: {message}",
        reason=reason,
        detail=message,
        metadata=metadata or {},
        audit_event="injection_attempt",
    )
