"""Patterns: nodes, relationships, recursive relationships and join hints.

Security: a pattern only ever reads; what matters in one is the expressions
inside its property maps and recursive-comprehension filters (parsed by
:class:`~.expressions.ExpressionParser`) and its size: every relationship
pattern counts against :data:`~.cursor.MAX_RELATIONSHIPS`, since planning
long patterns takes the engine seconds it cannot be interrupted in.
Relationship dashes and arrowheads may be the Unicode forms the engine
accepts, and only here.
"""

from __future__ import annotations

from typing import Final

from .cursor import MAX_RELATIONSHIPS, Cursor
from .model import TooComplex

_DASHES: Final = frozenset({"-", "~-"})
_LEFT_HEADS: Final = frozenset({"<", "~<"})
_RIGHT_HEADS: Final = frozenset({">", "~>"})
#: Keys that start a relationship pattern.
RELATIONSHIP_START: Final = _DASHES | _LEFT_HEADS


class PatternParser(Cursor):
    """``oC_Pattern`` and its parts, plus ``HINT`` join trees."""

    def pattern(self) -> None:
        self._pattern_part()
        while self.accept(","):
            self._pattern_part()

    def _pattern_part(self) -> None:
        if self.names[self.i] and self.key(1) == "=":
            self.variable()
            self.i += 1
        self._pattern_element()

    def _pattern_element(self) -> None:
        self.enter()
        if self.at("(") and self.key(1) == "(":
            self.i += 1
            self._pattern_element()
            self.expect(")")
        else:
            self.node_pattern()
            while self.keys[self.i] in RELATIONSHIP_START:
                self.relationship()
                self.node_pattern()
        self.depth -= 1

    def node_pattern(self) -> None:
        self.expect("(")
        if self.names[self.i]:
            self.variable()
        if self.at(":"):
            self._labels()
        if self.at("{"):
            self.properties()
        self.expect(")")

    def _labels(self) -> None:
        self.expect(":")
        self._label_name()
        while True:
            if self.accept("|"):
                self.accept(":")
            elif not self.accept(":"):
                return
            self._label_name()

    def _label_name(self) -> None:
        self.symbolic_name("label")
        for _ in range(3):
            if not self.accept("."):
                return
            self.symbolic_name("label")

    def relationship(self) -> None:
        """``-[…]-``, ``<-[…]-`` or ``-[…]->``, Unicode dashes and heads included."""
        self.relationships += 1
        if self.relationships > MAX_RELATIONSHIPS:
            raise TooComplex(f"more than {MAX_RELATIONSHIPS} relationship patterns", token=self.i)
        left = self.keys[self.i] in _LEFT_HEADS
        self.i += left
        self._dash()
        if self.at("["):
            self._relationship_detail()
        self._dash()
        if self.keys[self.i] in _RIGHT_HEADS:
            if left:
                self.fail("a relationship has at most one direction")
            self.i += 1

    def _dash(self) -> None:
        if self.keys[self.i] not in _DASHES:
            self.fail("expected - in a relationship pattern")
        self.i += 1

    def _relationship_detail(self) -> None:
        self.expect("[")
        if self.names[self.i]:
            self.variable()
        if self.accept(":"):
            self.symbolic_name("relationship type")
            while self.accept("|"):
                self.accept(":")
                self.symbolic_name("relationship type")
        if self.accept("*"):
            self._recursive_detail()
        if self.at("{"):
            self.properties()
        self.expect("]")

    def _recursive_detail(self) -> None:
        if self.accept("ALL"):
            if not self.accept("SHORTEST"):
                self._weighted_shortest()
        elif self.at("WSHORTEST"):
            self._weighted_shortest()
        else:
            _ = self.accept("SHORTEST") or self.accept("TRAIL") or self.accept("ACYCLIC")
        if self.accept("#"):
            if self.accept(".."):
                self.accept("#")
        elif self.accept(".."):
            self.accept("#")
        if self.at("("):
            self._recursive_comprehension()

    def _weighted_shortest(self) -> None:
        self.expect("WSHORTEST")
        self.expect("(")
        self.symbolic_name("property name")
        self.expect(")")

    def _recursive_comprehension(self) -> None:
        self.expect("(")
        self.variable()
        self.expect(",")
        self.variable()
        outer, self.no_pipe = self.no_pipe, True
        if self.accept("|"):
            if self.accept("WHERE"):
                self.expression()
                if self.accept("|"):
                    self._recursive_projection()
            else:
                self._recursive_projection()
        self.no_pipe = outer
        self.expect(")")

    def _recursive_projection(self) -> None:
        for index in range(2):
            if index:
                self.expect(",")
            self.expect("{")
            if not self.at("}"):
                self.expression()
                while self.accept(","):
                    self.expression()
            self.expect("}")

    def properties(self) -> None:
        """``{key: value, …}`` in a node or relationship pattern."""
        self.expect("{")
        if not self.at("}"):
            while True:
                self.symbolic_name("property name")
                self.expect(":")
                self.expression()
                if not self.accept(","):
                    break
        self.expect("}")

    def join_node(self) -> None:
        self.enter()
        self._join_primary()
        while True:
            if self.accept("JOIN"):
                self._join_primary()
            elif self.accept("MULTI_JOIN"):
                self.schema_name()
            else:
                break
        self.depth -= 1

    def _join_primary(self) -> None:
        if self.accept("("):
            self.join_node()
            self.expect(")")
        else:
            self.schema_name()
