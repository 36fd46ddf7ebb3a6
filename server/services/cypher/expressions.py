"""Recursive-descent parsing of expressions and data types.

Follows ``Cypher.g4`` of LadybugDB 0.22 rule by rule where a rule decides
where an expression ends or what a word means, and is more lenient than the
engine only inside an expression (operator precedence, chained comparisons,
optional whitespace), where leniency cannot move a clause boundary: no binary
operator is spelled like a clause keyword, so an expression ends exactly
where the engine's does, and text the engine rejects never runs anyway.

Security: inside an expression only three things can matter, and all are
recorded in :class:`~.model.Findings`: function invocations (``nextval``
writes; file, session and non-catalog table functions end the analysis as
BULK or ADMIN), ``EXISTS``/``COUNT`` subqueries and pattern expressions (they
read stored data). Nesting and operator chains are bounded (see
:mod:`.cursor`) so a hostile query exhausts neither the Python stack nor the
engine's.
"""

from __future__ import annotations

from typing import Final

from .functions import ADMIN_TABLE_FUNCTIONS, FILE_FUNCTIONS, SESSION_FUNCTIONS, WRITE_FUNCTIONS
from .model import CypherSyntaxError, QueryClass, TooComplex
from .patterns import RELATIONSHIP_START, PatternParser

# Keys (see lexer.Lexed) of the tokens that continue an expression.
_BINARY: Final = frozenset(
    {"=", "<>", "<", "<=", ">", ">=", "|", "&", "<<", ">>", "+", "-", "*", "/", "%", "^"}
    | {"OR", "XOR", "AND"}
)
_RHS_IS_ATOM: Final = frozenset({"=~", "CONTAINS", "IN"})
_PREFIXES: Final = frozenset({"NOT", "-"})
_QUANTIFIERS: Final = frozenset({"ALL", "ANY", "NONE", "SINGLE"})
_LITERALS: Final = frozenset({"'", "#", "#.", "$", "TRUE", "FALSE", "NULL"})


class ExpressionParser(PatternParser):
    """Expressions, patterns and data types (``oC_Expression`` and friends)."""

    def expression(self) -> None:
        self.enter()
        keys = self.keys
        self._operand()
        while True:
            key = keys[self.i]
            if key in _BINARY and not (key == "|" and self.no_pipe):
                self.i += 1
                self.count_operator()
                self._operand()
            elif key in _RHS_IS_ATOM:
                self.i += 1
                self.count_operator()
                self.property_or_labels()
            elif key == "[":
                self.count_operator()
                self._subscript()
            elif key == "!":  # factorial
                self.i += 1
                self.count_operator()
            elif key == "IS":
                self.i += 1
                self.count_operator()
                self.accept("NOT")
                self.expect("NULL")
            elif key in ("STARTS", "ENDS"):
                self.i += 1
                self.count_operator()
                self.expect("WITH")
                self.property_or_labels()
            elif key == "!=":
                self.fail("use <> for inequality")
            else:
                break
        self.depth -= 1

    def _operand(self) -> None:
        keys = self.keys
        while keys[self.i] in _PREFIXES:  # NOT and unary minus
            self.i += 1
            self.count_operator()
        self.property_or_labels()

    def property_or_labels(self) -> None:
        self.atom()
        keys = self.keys
        while keys[self.i] == ".":
            self.i += 1
            self.count_operator()
            if keys[self.i] == "*":
                self.i += 1
            else:
                self.symbolic_name("property name")

    def _subscript(self) -> None:
        self.expect("[")
        if not (self.at(":") or self.at("..")):
            self.expression()
        if (self.accept(":") or self.accept("..")) and not self.at("]"):
            self.expression()
        self.expect("]")

    def atom(self) -> None:
        key = self.keys[self.i]
        if key in _LITERALS:
            self.i += 1
            return
        if key == "":
            self.fail("expected an expression")
        after = self.keys[self.i + 1]
        if self.names[self.i]:  # non-reserved words: COUNT is the only special one
            if after == "(":
                self._function_call()
            elif after == "{" and key == "COUNT":
                self._subquery(key)
            else:
                self.variable()
        elif key == "(":
            self._parenthesized_or_path()
        elif key == "[":
            self._list_literal()
        elif key == "{":
            self._struct_literal()
        elif key == "CASE":
            self._case()
        elif key == "EXISTS" and after == "{":
            self._subquery(key)
        elif key == "CAST" and after == "(":
            self._cast()
        elif key in _QUANTIFIERS and after == "(":
            self._quantifier()
        else:
            self.variable()  # fails with the right message

    def _case(self) -> None:
        self.expect("CASE")
        if not self.at("WHEN"):
            self.expression()
        self.expect("WHEN")
        self.expression()
        self.expect("THEN")
        self.expression()
        while self.accept("WHEN"):
            self.expression()
            self.expect("THEN")
            self.expression()
        if self.accept("ELSE"):
            self.expression()
        self.expect("END")

    def _subquery(self, word: str) -> None:
        self.i += 2  # EXISTS or COUNT, then "{"
        self.findings.reads.append(f"{word} {{ … }}")
        self.expect("MATCH")
        self.pattern()
        if self.accept("WHERE"):
            self.expression()
        if self.accept("HINT"):
            self.join_node()
        self.expect("}")

    def _cast(self) -> None:
        self.i += 2  # CAST, then "("
        self.expression()
        if self.accept("AS"):
            self.data_type()
        else:
            self.expect(",")
            self.expression()
        self.expect(")")

    def _quantifier(self) -> None:
        self.i += 2  # ALL/ANY/NONE/SINGLE, then "("
        self.variable()
        self.expect("IN")
        self.expression()
        self.expect("WHERE")
        self.expression()
        self.expect(")")

    def function_name(self) -> str:
        """The upper-cased name of the function about to be invoked."""
        value = self.quoted.get(self.i)
        if value is not None and not (value.isascii() and value.isprintable()):
            self.fail("quoted function names must be printable ASCII")
        return self.variable().upper()

    def _function_call(self) -> None:
        name = self.function_name()
        self.findings.functions.add(name.lower())
        if name in WRITE_FUNCTIONS:
            self.findings.writes.append(f"{name.lower()}()")
        elif name in FILE_FUNCTIONS:
            self.decide(QueryClass.BULK, f"file access: {name.lower()}()")
        elif name in SESSION_FUNCTIONS or name in ADMIN_TABLE_FUNCTIONS:
            self.decide(QueryClass.ADMIN, f"changes or reveals engine state: {name.lower()}()")
        self.arguments(counting=name == "COUNT")

    def arguments(self, *, counting: bool = False) -> None:
        """``( [DISTINCT] arg, … )``, or ``(*)`` for ``count``."""
        self.expect("(")
        if counting and self.accept("*"):
            self.expect(")")
            return
        self.accept("DISTINCT")
        if not self.at(")"):
            self._argument()
            while self.accept(","):
                self._argument()
        self.expect(")")

    def _argument(self) -> None:
        if self.names[self.i]:
            if self.key(1) == "-" and self.key(2) == ">":  # x -> body
                self.variable()
                self._lambda_body()
                return
            if self.key(1) == ":" and self.key(2) == "=":  # a named argument, name := value
                self.i += 3
                self.expression()
                return
        if self.at("(") and self._lambda_parenthesized():
            return
        self.expression()

    def _lambda_parenthesized(self) -> bool:
        """``(x, y) -> body`` if the tokens say so; otherwise consume nothing."""
        j = self.i + 1
        keys, names = self.keys, self.names
        while names[j] and keys[j + 1] == ",":
            j += 2
        if not (names[j] and keys[j + 1] == ")" and self.key(j + 2 - self.i) == "-"):
            return False
        if self.key(j + 3 - self.i) != ">":
            return False
        self.i += 1
        self.variable()
        while self.accept(","):
            self.variable()
        self.expect(")")
        self._lambda_body()
        return True

    def _lambda_body(self) -> None:
        self.expect("-")
        self.expect(">")
        self.expression()

    def _list_literal(self) -> None:
        self.expect("[")
        if not self.at("]"):
            self.expression()
            while self.accept(","):
                if not (self.at(",") or self.at("]")):
                    self.expression()
        self.expect("]")

    def _struct_literal(self) -> None:
        self.expect("{")
        while True:
            if not self.accept("'"):
                self.symbolic_name("field name")
            self.expect(":")
            self.expression()
            if not self.accept(","):
                break
        self.expect("}")

    def _parenthesized_or_path(self) -> None:
        # "(a)-[:R]->(b)" is a pattern, "(a) - 1" arithmetic: try the pattern
        # first and fall back. Findings of an abandoned attempt stay: they
        # only name tokens that are present either way.
        start, depth, no_pipe, relationships = self.i, self.depth, self.no_pipe, self.relationships
        try:
            self.node_pattern()
            if self.keys[self.i] in RELATIONSHIP_START:
                while self.keys[self.i] in RELATIONSHIP_START:
                    self.relationship()
                    self.node_pattern()
                self.findings.reads.append("pattern expression")
                return
        except TooComplex:
            raise
        except CypherSyntaxError:
            pass
        self.i, self.depth, self.no_pipe = start, depth, no_pipe
        self.relationships = relationships
        self.expect("(")
        self.expression()
        self.expect(")")

    def data_type(self) -> None:
        self.enter()
        key, opens = self.keys[self.i], self.key(1) == "("
        if opens and key in ("STRUCT", "UNION"):
            self.i += 2
            self.column_definitions()
            self.expect(")")
        elif opens and key == "MAP":
            self.i += 2
            self.data_type()
            self.expect(",")
            self.data_type()
            self.expect(")")
        elif opens and key == "DECIMAL":
            self.i += 2
            self.integer()
            self.expect(",")
            self.integer()
            self.expect(")")
        else:
            self.symbolic_name("type name")
        while self.accept("["):
            self.accept("#")
            self.expect("]")
        self.depth -= 1

    def column_definitions(self) -> None:
        while True:
            self.symbolic_name("column name")
            self.data_type()
            if not self.accept(","):
                return
