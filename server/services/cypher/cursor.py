"""The parser's cursor over lexed keys, its budgets and its error helpers.

Security: the budgets below bound what one statement may ask of the parser
and, more importantly, of the engine, whose parser, binder and planner
recurse or search without limits and do not honour the query timeout while
they do. A statement over budget is refused as ``QUERY_TOO_COMPLEX``.
"""

from __future__ import annotations

from typing import Final, NoReturn

from .keywords import STATEMENT_WORDS
from .lexer import NOT_NAMES, Lexed, is_word
from .model import CypherSyntaxError, Decided, Findings, QueryClass, TooComplex

#: Deepest nesting of expressions, patterns and types the firewall accepts
#: (the engine's parser overflows its stack at a few thousand).
MAX_DEPTH: Final = 40
#: Most operators and property lookups in one statement: the engine's binder
#: overflows its stack on one chain of 10,000 "+", 15,000 NOT or 10,000 ".a"
#: (8,000 "+" still pass), so a third of that leaves room for any nesting.
MAX_OPERATORS: Final = 3_000
#: Most relationship patterns in one statement: planning a 16-hop pattern
#: takes the engine 0.6 s, a 40-hop one 5 s, and neither the query timeout
#: nor ``interrupt()`` stops planning.
MAX_RELATIONSHIPS: Final = 16


def safe_name(name: str) -> str:
    """A name fit for a caller-visible reason: short printable ASCII, or a stand-in."""
    if not name.isascii() or not name.isprintable():
        return "(quoted name)"
    return name if len(name) <= 40 else name[:40] + "..."


class Cursor:
    """A position in a lexed statement plus the findings about it."""

    def __init__(self, lexed: Lexed, findings: Findings) -> None:
        self.keys = lexed.keys
        self.names = [key not in NOT_NAMES for key in lexed.keys]
        self.quoted = lexed.quoted
        self.i = 0
        self.findings = findings
        self.depth = 0
        self.operators = 0
        self.relationships = 0
        #: Inside a recursive comprehension, ``|`` separates its parts.
        self.no_pipe = False

    def key(self, ahead: int = 0) -> str:
        """The key of the token ``ahead`` of the current one ("" past the end)."""
        index = self.i + ahead
        return self.keys[index] if index < len(self.keys) else ""

    def at(self, key: str) -> bool:
        return self.keys[self.i] == key

    def accept(self, key: str) -> bool:
        if self.keys[self.i] == key:
            self.i += 1
            return True
        return False

    def expect(self, key: str) -> None:
        if self.keys[self.i] != key:
            self.fail(f"expected {_describe(key)}")
        self.i += 1

    def at_name(self, ahead: int = 0) -> bool:
        index = self.i + ahead
        return index < len(self.names) and self.names[index]

    def fail(self, message: str) -> NoReturn:
        found = "end of statement" if self.keys[self.i] == "" else "unexpected token"
        raise CypherSyntaxError(f"{message} ({found})", token=self.i)

    def decide(self, query_class: QueryClass, reason: str) -> NoReturn:
        raise Decided(query_class, reason, self.findings.statement)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooComplex(f"nested deeper than {MAX_DEPTH} levels", token=self.i)

    def count_operator(self) -> None:
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise TooComplex(f"more than {MAX_OPERATORS} operators", token=self.i)

    def symbolic_name(self, what: str = "name") -> str:
        """A property key, label, table or other schema name; returns its text."""
        if not self.names[self.i]:
            self.fail(f"expected a {what}")
        self.i += 1
        return self.quoted.get(self.i - 1, self.keys[self.i - 1])

    def variable(self) -> str:
        """A variable, alias or function name: statement words must be quoted."""
        index = self.i
        key = self.keys[index]
        if key in STATEMENT_WORDS:
            raise CypherSyntaxError(
                f"{key} is a statement keyword; quote the name in backticks", token=index
            )
        if not self.names[index]:
            self.fail("expected a variable")
        self.i = index + 1
        return self.quoted.get(index, key)

    def schema_name(self) -> str:
        name = self.symbolic_name("table name")
        if self.accept("."):
            name += "." + self.symbolic_name("table name")
        return name

    def expression(self) -> None:
        """One expression: implemented by :class:`~.expressions.ExpressionParser`."""
        raise NotImplementedError

    def integer(self) -> None:
        if not self.accept("#"):
            self.fail("expected an integer")


def _describe(key: str) -> str:
    return key if is_word(key) else repr(key)
