"""Query clauses: ``oC_Query`` of LadybugDB 0.22, clause by clause.

A query is a sequence of parts; within a part reading clauses (``MATCH``,
``UNWIND``, ``CALL``, ``LOAD``) come before updating clauses (``CREATE``,
``MERGE``, ``SET``, ``DELETE``); ``WITH`` ends a part and ``RETURN`` ends the
query, which ``UNION`` may continue.

Security: a clause keyword is recognised only where the grammar expects a
clause, i.e. after a complete clause; since no expression can continue with a
clause keyword, that position is the engine's too. Every updating clause is
recorded as a write and every clause reading stored data as a read.
``LOAD`` inside a query reads server files and ends the analysis as BULK;
``CALL`` passes only for the catalog functions of
:data:`~.functions.CATALOG_FUNCTIONS`.
"""

from __future__ import annotations

from typing import Final

from .cursor import safe_name
from .expressions import ExpressionParser
from .functions import CATALOG_FUNCTIONS, FILE_FUNCTIONS
from .model import QueryClass

_READING: Final = frozenset({"MATCH", "OPTIONAL", "UNWIND", "CALL", "LOAD"})
_UPDATING: Final = frozenset({"CREATE", "MERGE", "SET", "DELETE", "DETACH"})
_SORT_ORDERS: Final = frozenset({"ASC", "ASCENDING", "DESC", "DESCENDING"})


class QueryParser(ExpressionParser):
    """``oC_Query``: reading, updating and projection clauses."""

    def query(self) -> None:
        self._single_query()
        while self.accept("UNION"):
            self.accept("ALL")
            self._single_query()

    def _single_query(self) -> None:
        while True:  # one query part per round
            updating = False
            while True:
                word = self.keys[self.i]
                if word in _READING and not updating:
                    self._reading_clause(word)
                elif word in _UPDATING:
                    self._updating_clause(word)
                    updating = True
                else:
                    break
            if self.accept("WITH"):
                self._projection_body()
                if self.accept("WHERE"):
                    self.expression()
                continue
            if self.accept("RETURN"):
                self._projection_body()
                return
            if not updating:
                self.fail("a query ends with RETURN or an updating clause")
            return

    # -- reading ----------------------------------------------------------

    def _reading_clause(self, word: str) -> None:
        if word == "LOAD":
            self.decide(QueryClass.BULK, "file access: LOAD FROM")
        self.i += 1
        if word == "UNWIND":
            self.expression()
            self.expect("AS")
            self.variable()
        elif word == "CALL":
            self.call_clause()
        else:
            if word == "OPTIONAL":
                self.expect("MATCH")
                word = "OPTIONAL MATCH"
            self.findings.reads.append(word)
            self.pattern()
            if self.accept("WHERE"):
                self.expression()
            if self.accept("HINT"):
                self.join_node()

    def call_clause(self) -> None:
        """``CALL fn(…) [WHERE …] [YIELD …]`` after the ``CALL`` keyword."""
        name = self.function_name()
        if name not in CATALOG_FUNCTIONS:
            if name in FILE_FUNCTIONS:
                self.decide(QueryClass.BULK, f"file access: CALL {name.lower()}")
            self.decide(
                QueryClass.ADMIN,
                f"table function not on the allow-list: CALL {safe_name(name.lower())}",
            )
        self.findings.table_functions.add(name.lower())
        self.findings.reads.append(f"CALL {name.lower()}")
        self.arguments()
        if self.accept("WHERE"):
            self.expression()
        if self.accept("YIELD"):
            self._yield_item()
            while self.accept(","):
                self._yield_item()

    def _yield_item(self) -> None:
        self.variable()
        if self.accept("AS"):
            self.variable()

    # -- updating ---------------------------------------------------------

    def _updating_clause(self, word: str) -> None:
        self.i += 1
        if word == "DETACH":
            self.expect("DELETE")
            word = "DETACH DELETE"
        self.findings.writes.append(word)
        if word == "CREATE":
            self.pattern()
        elif word == "MERGE":
            self.pattern()
            while self.accept("ON"):
                if not self.accept("MATCH"):
                    self.expect("CREATE")
                self.expect("SET")
                self._set_items()
        elif word == "SET":
            self._set_items()
        else:
            self.expression()
            while self.accept(","):
                self.expression()

    def _set_items(self) -> None:
        while True:
            self.atom()
            if self.accept("."):
                self.symbolic_name("property name")
                self.expect("=")
                self.expression()
            else:
                self.expect("=")
                self.properties()
            if not self.accept(","):
                return

    # -- projection -------------------------------------------------------

    def _projection_body(self) -> None:
        self.accept("DISTINCT")
        if self.accept("*"):
            while self.accept(","):
                self._projection_item()
        else:
            self._projection_item()
            while self.accept(","):
                self._projection_item()
        if self.accept("ORDER"):
            self.expect("BY")
            self._sort_item()
            while self.accept(","):
                self._sort_item()
        if self.accept("SKIP"):
            self.expression()
        if self.accept("LIMIT"):
            self.expression()

    def _projection_item(self) -> None:
        self.expression()
        if self.accept("AS"):
            self.variable()

    def _sort_item(self) -> None:
        self.expression()
        if self.keys[self.i] in _SORT_ORDERS:
            self.i += 1
