"""The firewall's vocabulary: query classes, the analysis result, internal errors.

Security: :class:`Analysis` is the only thing the rest of graphgate sees of a
query's structure. Its ``reasons`` are built from fixed phrases plus keyword
and function names the lexer proved to be plain ASCII identifiers, so they are
safe to show the caller; they never quote string literals, paths or comments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class QueryClass(enum.Enum):
    """What one Cypher statement does, from least to most dangerous.

    * ``READ``: reads only (``MATCH``, ``UNWIND``, ``WITH``, ``RETURN``,
      ``UNION``, ``CALL`` of a catalog function, pure functions).
    * ``WRITE``: changes data (``CREATE``, ``MERGE``, ``SET``, ``DELETE``,
      ``DETACH DELETE``, ``nextval()``) and reads no stored data besides what
      it writes: ``MERGE`` finding its own pattern and ``UNWIND $rows`` count
      as writing, not reading.
    * ``MIXED``: changes data *and* reads stored data through ``MATCH``,
      ``OPTIONAL MATCH``, a catalog ``CALL``, an ``EXISTS``/``COUNT``
      subquery or a pattern expression (``MATCH … SET``, ``MATCH … CREATE …
      RETURN``).
    * ``SCHEMA_DDL``: ``CREATE``/``DROP``/``ALTER`` of node tables, rel tables,
      rel table groups and sequences, ``COMMENT ON TABLE``, and ``CREATE …
      TABLE … AS <query>`` when the query itself is no worse.
    * ``BULK``: touches server files (``LOAD FROM``, ``COPY … FROM/TO``,
      ``EXPORT``/``IMPORT DATABASE``, file table functions, table storage
      options).
    * ``ADMIN``: changes the engine, the session or the set of databases
      (settings, transactions, ``CHECKPOINT``, ``ATTACH``/``DETACH``/``USE``,
      extensions, ``EXPLAIN``/``PROFILE``, ``ANALYZE``, graphs, macros, types,
      indexes, partitions), plus anything the firewall does not know.
    """

    READ = "READ"
    WRITE = "WRITE"
    MIXED = "MIXED"
    SCHEMA_DDL = "SCHEMA_DDL"
    BULK = "BULK"
    ADMIN = "ADMIN"


@dataclass(frozen=True)
class Analysis:
    """The firewall's verdict on one statement (see :func:`analyze`).

    ``reasons`` are short phrases safe to show the caller, e.g.
    ``"writes data: CREATE"``. ``parameters`` holds every ``$name`` the text
    references, exactly as the engine will look it up. ``statement`` names
    the statement form (``"QUERY"``, ``"CREATE NODE TABLE"``, ``"COPY"``…).
    ``functions`` are the lower-case names of functions invoked in
    expressions; ``table_functions`` those invoked by ``CALL``.
    """

    query_class: QueryClass
    reasons: tuple[str, ...]
    parameters: frozenset[str]
    statement: str = "QUERY"
    functions: frozenset[str] = frozenset()
    table_functions: frozenset[str] = frozenset()


class CypherSyntaxError(Exception):
    """The text is outside what the firewall understands; the query is refused.

    Either ``offset`` indexes the query string or ``token`` indexes the
    lexer's keys (the analyzer turns it into an offset only when reporting).
    ``message`` is safe to show: it never quotes the query.
    """

    def __init__(self, message: str, offset: int = -1, *, token: int = -1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.token = token


class TooComplex(CypherSyntaxError):
    """The statement exceeds a parser budget (nesting, operators, relationships).

    The budgets protect the engine as much as the parser: its parser, binder
    and planner recurse or search without limits and ignore the query timeout.
    """


class Decided(Exception):
    """Raised mid-parse once a statement is known to be BULK or ADMIN.

    Both are refused for every caller whatever follows, so the parser stops
    there instead of having to understand, say, every ``COPY`` option.
    """

    def __init__(self, query_class: QueryClass, reason: str, statement: str) -> None:
        super().__init__(reason)
        self.query_class = query_class
        self.reason = reason
        self.statement = statement


@dataclass
class Findings:
    """What the parser saw while walking one statement."""

    statement: str = "QUERY"
    #: Clauses and functions that change data ("CREATE", "nextval()").
    writes: list[str] = field(default_factory=list)
    #: Constructs that read stored graph data ("MATCH", "CALL show_tables").
    reads: list[str] = field(default_factory=list)
    #: Schema changes ("CREATE NODE TABLE").
    schema: list[str] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    table_functions: set[str] = field(default_factory=set)
