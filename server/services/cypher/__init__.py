"""The query firewall (C15): classify one Cypher statement, then allow it per role.

``analyze(text)`` runs our own lexer and parser for LadybugDB 0.22's Cypher
dialect and returns an :class:`Analysis` whose ``query_class`` is READ,
WRITE, MIXED, SCHEMA_DDL, BULK or ADMIN; ``authorize(analysis, role, …)``
applies the allow-list of :mod:`.policy`. Both raise
:class:`~graphgate.server.errors.QueryRefused`, which is always audited.

Security: the engine offers no sandbox (see ``LADYBUG.md``): a read-only
transaction still reads and writes server files, loads native code, changes
settings and ends itself. So this firewall is exact where it matters: one
lexer pass recognises strings, comments, backticks and parameters together,
exactly as the engine's lexer does, and refuses what it does not understand;
a real parser decides what each word is, so keywords in strings, comments,
backticks, property names, labels and map keys never count; exactly one
statement per request; ``CALL`` only of catalog functions; file, extension,
setting, transaction, attach and unknown statements are BULK or ADMIN and
refused for everyone; analysis failure means refusal. It is one layer:
viewers also run inside a read-only transaction, every query runs under a
server-set timeout and row limit, and the engine runs in worker processes
because some plain reads (``RETURN properties(null)``) crash it.
"""

from __future__ import annotations

from .analyzer import MAX_QUERY_BYTES, analyze
from .model import Analysis, QueryClass
from .policy import Role, authorize

__all__ = ["MAX_QUERY_BYTES", "Analysis", "QueryClass", "Role", "analyze", "authorize"]
