"""Statement dispatch and the schema (DDL) statements of LadybugDB 0.22.

The first one or two words decide the statement form, as in the engine's
``oC_Statement``: queries are parsed by :class:`~.clauses.QueryParser`, the
schema statements the firewall may allow are parsed here in full, and every
other form is decided BULK or ADMIN from its leading words.

Security: the collisions the engine's grammar resolves by context are
resolved the same way here: bare ``DETACH DELETE`` detaches a database named
DELETE (ADMIN) while ``DETACH DELETE n`` deletes (WRITE); ``LOAD FROM …`` reads
files (BULK) while ``LOAD x``/``LOAD CSV`` loads an extension (ADMIN);
``CALL name = value`` changes a setting (ADMIN); ``CREATE … TABLE … AS
<query>`` copies data and is as dangerous as its query (``AS LOAD FROM`` is
BULK); table ``WITH (…)`` storage options may bind external data (BULK).
Schema forms outside the allowed set (macros, which outlive the request and
could wrap any function; types; indexes; graphs, which write files;
partitioning, which creates subgraphs) are ADMIN. Unknown statements are
ADMIN.
"""

from __future__ import annotations

from typing import Final

from .clauses import QueryParser
from .cursor import safe_name
from .lexer import is_word
from .model import QueryClass

_QUERY_START: Final = frozenset(
    {"MATCH", "OPTIONAL", "UNWIND", "WITH", "RETURN", "MERGE", "SET", "DELETE"}
)
_ADMIN: Final = {
    "ATTACH": "attaches a database file: ATTACH",
    "USE": "switches the database: USE",
    "INSTALL": "manages extensions: INSTALL",
    "FORCE": "manages extensions: FORCE INSTALL",
    "UNINSTALL": "manages extensions: UNINSTALL",
    "UPDATE": "manages extensions: UPDATE",
    "BEGIN": "controls transactions: BEGIN",
    "COMMIT": "controls transactions: COMMIT",
    "ROLLBACK": "controls transactions: ROLLBACK",
    "CHECKPOINT": "controls transactions: CHECKPOINT",
    "ANALYZE": "rebuilds engine statistics: ANALYZE",
    "EXPLAIN": "EXPLAIN is not inert (EXPLAIN EXPORT DATABASE writes files)",
    "PROFILE": "PROFILE runs the statement it profiles",
}
_ADMIN_CREATE: Final = {
    "GRAPH": "CREATE GRAPH writes a database file",
    "MACRO": "macros outlive the request and may wrap any function",
    "TYPE": "type definitions are not allowed",
    "INDEX": "index definitions are not allowed",
}


class StatementParser(QueryParser):
    """Parses one statement; raises :class:`~.model.Decided` for BULK/ADMIN."""

    def statement(self) -> None:
        word = self.keys[self.i]
        if word in _QUERY_START:
            self.query()
        elif word == "CREATE":
            self._create()
        elif word == "DETACH":
            self._detach()
        elif word == "CALL":
            self._call()
        elif word == "LOAD":
            self._load()
        elif word == "DROP":
            self._drop()
        elif word == "ALTER":
            self._alter()
        elif word == "COMMENT":
            self._comment()
        elif word == "COPY":
            self.findings.statement = "COPY"
            direction = "COPY TO" if self.key(1) == "(" else "COPY FROM"
            self.decide(QueryClass.BULK, f"file access: {direction}")
        elif word in ("EXPORT", "IMPORT"):
            self.findings.statement = f"{word} DATABASE"
            self.decide(QueryClass.BULK, f"file access: {word} DATABASE")
        elif word in _ADMIN:
            self.findings.statement = word
            self.decide(QueryClass.ADMIN, _ADMIN[word])
        elif is_word(word):
            self.findings.statement = "UNKNOWN"
            self.decide(QueryClass.ADMIN, f"unknown statement: {safe_name(word)}")
        else:
            self.fail("a statement starts with a keyword")
        if not self.at(""):
            self.fail("expected the end of the statement")

    # -- dispatch on the second word ---------------------------------------

    def _create(self) -> None:
        second, third = self.key(1), self.key(2)
        if second == "(" or (self.at_name(1) and third == "="):
            self.query()
        elif second in ("NODE", "REL") and third == "TABLE":
            self._create_table(second)
        elif second == "SEQUENCE":
            self._create_sequence()
        else:
            form = second if is_word(second) else ""
            self.findings.statement = f"CREATE {safe_name(form)}".rstrip()
            if form not in _ADMIN_CREATE and third == "INDEX":
                form = "INDEX"
            self.decide(QueryClass.ADMIN, _ADMIN_CREATE.get(form, "unknown CREATE statement"))

    def _detach(self) -> None:
        # "DETACH DELETE" alone (or "DETACH DELETE.x") names a database.
        if self.key(1) == "DELETE" and self.key(2) not in ("", "."):
            self.query()
            return
        self.findings.statement = "DETACH"
        self.decide(QueryClass.ADMIN, "detaches a database: DETACH")

    def _call(self) -> None:
        if self.at_name(1) and self.key(2) == "=":
            self.findings.statement = "CALL SETTING"
            self.decide(QueryClass.ADMIN, "changes a setting: CALL <option> = …")
        self.findings.statement = "CALL"
        self.i += 1
        self.call_clause()
        if not self.at(""):  # not a standalone CALL: parse it again as a query
            self.findings.statement = "QUERY"
            self.findings.reads.clear()
            self.i = 0
            self.query()

    def _load(self) -> None:
        second = self.key(1)
        if (second == "FROM" and self.key(2) != "") or second == "WITH":
            self.query()
            return
        self.findings.statement = "LOAD EXTENSION"
        self.decide(QueryClass.ADMIN, "loads an extension: LOAD")

    # -- schema statements ------------------------------------------------

    def _create_table(self, form: str) -> None:
        statement = f"CREATE {form} TABLE"
        self.i += 3
        if form == "REL" and self.accept("GROUP"):
            statement = "CREATE REL TABLE GROUP"
        self.findings.statement = statement
        self.findings.schema.append(statement)
        self._if_not_exists()
        self.schema_name()
        if self.accept("("):
            if form == "NODE":
                self._node_table_body()
            else:
                self._rel_table_body()
        if self.accept("AS"):
            self.query()
        if self.at("WITH"):
            self.decide(QueryClass.BULK, "table storage options may bind external data: WITH (…)")
        if self.at("PARTITION"):
            self.decide(QueryClass.ADMIN, "partitioned tables create subgraphs: PARTITION BY")

    def _node_table_body(self) -> None:
        self._property_definition()
        while self.accept(","):
            if self.accept("PRIMARY"):
                self.expect("KEY")
                self.expect("(")
                self.symbolic_name("property name")
                self.expect(")")
                break
            self._property_definition()
        self.expect(")")

    def _rel_table_body(self) -> None:
        self._from_to(named=True)
        while self.accept(","):
            if self._at_from_to():
                self._from_to(named=True)
            elif self.at_name() and self.key(1) == ")":
                self.i += 1  # a multiplicity such as MANY_ONE
                break
            else:
                self._property_definition()
        self.expect(")")

    def _at_from_to(self) -> bool:
        return self.at("FROM") and "TO" in (self.key(2), self.key(4))

    def _from_to(self, *, named: bool = False) -> None:
        self.expect("FROM")
        self.schema_name()
        self.expect("TO")
        self.schema_name()
        if named and self.at_name():  # an optional name for the connection
            self.i += 1

    def _property_definition(self) -> None:
        self.symbolic_name("property name")
        self.data_type()
        if self.accept("DEFAULT"):
            self.expression()
        if self.accept("PRIMARY"):
            self.expect("KEY")

    def _if_not_exists(self) -> None:
        if self.accept("IF"):
            self.expect("NOT")
            self.expect("EXISTS")

    def _if_exists(self) -> None:
        if self.accept("IF"):
            self.expect("EXISTS")

    def _create_sequence(self) -> None:
        self.i += 2
        self.findings.statement = "CREATE SEQUENCE"
        self.findings.schema.append("CREATE SEQUENCE")
        self._if_not_exists()
        self.schema_name()
        while not self.at(""):
            if self.accept("INCREMENT"):
                self.accept("BY")
                self._signed_integer()
            elif self.accept("START"):
                self.accept("WITH")
                self._signed_integer()
            elif self.accept("MINVALUE") or self.accept("MAXVALUE"):
                self._signed_integer()
            elif self.accept("NO"):
                if not (self.accept("MINVALUE") or self.accept("MAXVALUE")):
                    self.expect("CYCLE")
            else:
                self.expect("CYCLE")

    def _signed_integer(self) -> None:
        self.accept("-")
        self.integer()

    def _drop(self) -> None:
        form = self.key(1) if is_word(self.key(1)) else ""
        self.findings.statement = f"DROP {safe_name(form)}".rstrip()
        if form not in ("TABLE", "SEQUENCE"):
            self.decide(QueryClass.ADMIN, "only tables and sequences may be dropped")
        self.i += 2
        self.findings.schema.append(self.findings.statement)
        self._if_exists()
        self.schema_name()

    def _alter(self) -> None:
        self.findings.statement = "ALTER TABLE"
        self.findings.schema.append("ALTER TABLE")
        self.i += 1
        self.expect("TABLE")
        self.schema_name()
        if self.accept("ADD"):
            self._if_not_exists()
            if self._at_from_to():
                self._from_to()
            else:
                self._property_definition()
        elif self.accept("DROP"):
            self._if_exists()
            if self._at_from_to():
                self._from_to()
            else:
                self.symbolic_name("property name")
        elif self.accept("RENAME"):
            if self.accept("TO"):
                self.schema_name()
            else:
                self.symbolic_name("property name")
                self.expect("TO")
                self.symbolic_name("property name")
        else:
            self._set_sorted_by()

    def _set_sorted_by(self) -> None:
        for word in ("SET", "SORTED", "BY", "("):
            self.expect(word)
        while True:
            self.symbolic_name("property name")
            if not (self.accept("ASC") or self.accept("DESC")):
                self.fail("expected ASC or DESC")
            if not self.accept(","):
                break
        self.expect(")")
        self.accept("CSR")

    def _comment(self) -> None:
        self.findings.statement = "COMMENT ON TABLE"
        self.findings.schema.append("COMMENT ON TABLE")
        self.i += 1
        self.expect("ON")
        self.expect("TABLE")
        self.schema_name()
        self.expect("IS")
        self.expect("'")
