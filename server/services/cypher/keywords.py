"""Keyword facts of LadybugDB 0.22's Cypher grammar, as measured on the wheel.

Security: the parser treats a word as a name only where the grammar allows a
name, and refuses a *reserved* word there, exactly like the engine. On top of
that, :data:`STATEMENT_WORDS` may not be used unquoted as variables, aliases
or function names: the engine allows ``WITH 1 AS delete``, but a name spelled
like a statement keyword is the raw material of every misclassification, so
it must be written in backticks instead.
"""

from __future__ import annotations

from typing import Final

#: Words the engine refuses as unquoted names (``WITH 1 AS <word>`` fails to
#: parse). Everything else, including DELETE, SET, LOAD, CALL and MATCH, is
#: an ordinary name wherever the grammar expects one.
RESERVED: Final = frozenset(
    {
        "ACYCLIC", "ALL", "AND", "ANY", "ASC", "ASCENDING", "CASE", "CAST",
        "COLUMN", "COMMIT_SKIP_CHECKPOINT", "CREATE", "CSR", "DBTYPE", "DEFAULT",
        "DESC", "DESCENDING", "DISTINCT", "ELSE", "END", "ENDS", "EXISTS",
        "FALSE", "FOR", "GLOB", "GROUP", "HEADERS", "HINT", "IN", "INDEX",
        "INSTALL", "JOIN", "MACRO", "MULTI_JOIN", "NONE", "NOT", "NULL", "ON",
        "ONLY", "OPTIONAL", "OPTIONS", "OR", "ORDER", "PRIMARY", "PROFILE",
        "ROLLBACK_SKIP_CHECKPOINT", "SHORTEST", "SINGLE", "SORTED", "STARTS",
        "TABLE", "THEN", "TRAIL", "TRUE", "UNION", "UNWIND", "WHEN", "WHERE",
        "WITH", "WSHORTEST", "XOR",
    }
)  # fmt: skip

#: Non-reserved words that start or change statements; refused as bare
#: variable, alias and function names (quote them in backticks).
STATEMENT_WORDS: Final = frozenset(
    {
        "ALTER", "ANALYZE", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "COMMENT",
        "COMMIT", "COPY", "DELETE", "DETACH", "DROP", "EXPLAIN", "EXPORT",
        "EXTENSION", "FORCE", "IMPORT", "LOAD", "MERGE", "ROLLBACK", "SET",
        "TRANSACTION", "UNINSTALL", "UPDATE", "USE",
    }
)  # fmt: skip
