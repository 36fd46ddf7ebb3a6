"""C15: the query firewall classifies one statement and allows it per role.

``CORPUS`` is the evasion corpus: every entry names the class the firewall
must give or the refusal it must raise. The engine-agreement contract test
(``tests/contract/test_cypher_engine_agreement.py``) replays the same corpus
against the real engine.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from graphgate.server.errors import QueryRefused
from graphgate.server.services.cypher import (
    MAX_QUERY_BYTES,
    Analysis,
    QueryClass,
    Role,
    analyze,
    authorize,
)

READ, WRITE, MIXED = QueryClass.READ, QueryClass.WRITE, QueryClass.MIXED
DDL, BULK, ADMIN = QueryClass.SCHEMA_DDL, QueryClass.BULK, QueryClass.ADMIN
MULTI, FAILED, EMPTY = "MULTIPLE_STATEMENTS", "QUERY_ANALYSIS_FAILED", "EMPTY_QUERY"


class Case(NamedTuple):
    """One corpus entry: a query and the class or refusal reason expected."""

    query: str
    expected: QueryClass | str
    #: Values to run a READ entry with (the contract test executes them).
    params: dict[str, Any] = {}
    #: False for text the engine must never see in-process (it crashes).
    engine: bool = True


CORPUS: tuple[Case, ...] = (
    # -- READ, including keywords where they do not count -----------------
    Case("MATCH (n:Person) RETURN n.name", READ),
    Case("MATCH (n:Person) WHERE n.name = 'DETACH DELETE n' RETURN n", READ),
    Case("MATCH (n:Person) WHERE n.url = 'https://example.com' RETURN n", READ),
    Case('MATCH (n:Person) WHERE n.url = "http://x/*" RETURN n.url + "*/"', READ),
    Case("MATCH (n:Person) RETURN n // DETACH DELETE n", READ),
    Case("MATCH (n:Person) /* SET n.age = 1 */ RETURN n", READ),
    Case("MATCH (n:Person) RETURN n.`delete`", READ),
    Case("MATCH (n:Person) RETURN n.delete, n.set, n.load, n.call", READ),
    Case("MATCH (n:Load) RETURN count(n)", READ),
    Case("MATCH (n:Person)-[:Delete|Set]->(m) RETURN m", READ),
    Case("MATCH (n:Person) RETURN {delete: n.name, set: 1, load: 2}", READ),
    Case("mAtCh (n:Person) ReTuRn n", READ),
    Case("MATCH (n:Person)-[:Knows]->(m) RETURN m LIMIT $limit", READ, {"limit": 2}),
    Case(
        "OPTIONAL MATCH (n:Person) WITH n UNWIND [1, 2] AS x "
        "RETURN n.name, x ORDER BY x SKIP 1 LIMIT 5",
        READ,
    ),
    Case("MATCH (a:Person) RETURN a.name UNION ALL MATCH (b:Person) RETURN b.name", READ),
    Case("CALL show_tables() RETURN *", READ),
    Case("CALL table_info('Person') RETURN *", READ),
    Case("RETURN 1;", READ),
    Case("RETURN 1; // a trailing comment", READ),
    Case("RETURN 1 ; /* trailing */ \n", READ),
    Case("RETURN 'a;b' + \"c;d\"", READ),
    Case("MATCH (`a;b`:Person) RETURN `a;b`.name", READ),
    Case("RETURN 1 // ; MATCH (n) DELETE n", READ),
    Case("RETURN 1 /* ; MATCH (n) DELETE n */", READ),
    Case("RETURN 'it\\'s' // DETACH DELETE n", READ),
    Case("RETURN '\\\\' // a backslash, then a comment: ' DETACH DELETE n", READ),
    Case("RETURN 1 // U+2028 does not end a comment\u2028 DETACH DELETE n", READ),
    Case("MATCH (n:Person) WHERE EXISTS { MATCH (n)-[:Knows]->() } RETURN n.name", READ),
    Case("MATCH p = (a:Person)-[:Knows* SHORTEST 1..3]->(b:Person) RETURN length(p)", READ),
    Case("RETURN list_transform([1, 2], x -> x * 2)", READ),
    Case("MATCH (n:Person) RETURN n.name AS name ORDER BY name DESC", READ),
    Case("MATCH (a:Person)\u2013[:Knows]\u2013\u27e9(b) RETURN b.name", READ),
    Case("MATCH\u00a0(n:Person)\u3000RETURN\u180en.name\u1680", READ),
    Case("MATCH (n:Person) WITH n AS `delete` RETURN `delete`.name", READ),
    Case("RETURN $a$b AS x", READ, {"a$b": 1}),
    Case("RETURN CASE WHEN $x > 1 THEN 'big' ELSE 'small' END", READ, {"x": 2}),
    Case("RETURN 1 /* a */ + /* b */ 2 // c\r\n", READ),
    # Plain reads that crash the engine: the firewall cannot know every crash.
    Case("RETURN properties(null)", READ, engine=False),
    Case("RETURN substring('abc', 1, -2)", READ, engine=False),
    # -- WRITE ------------------------------------------------------------
    Case("CREATE (:Person {name: 'x'})", WRITE),
    Case("CREATE (n:Person {name: $name}) RETURN n.name", WRITE),
    Case("MERGE (n:Person {name: 'x'}) ON CREATE SET n.age = 1", WRITE),
    Case("UNWIND $rows AS r CREATE (:Person {name: r})", WRITE),
    Case("RETURN nextval('seq')", WRITE),
    Case("RETURN `NextVal`('seq')", WRITE),
    Case("DETACH\u180eDELETE n", WRITE),
    Case("DETACH/**/DELETE n", WRITE),
    Case("DETACH\u2028DELETE n", WRITE),
    # -- MIXED: reads stored data and writes ------------------------------
    Case("MATCH (n:Person) SET n.age = 1", MIXED),
    Case("MATCH (n:Person) WHERE n.url = 'https://' DETACH DELETE n", MIXED),
    Case("MATCH (n:Person) WHERE n.name = '//' DETACH/* x */DELETE n", MIXED),
    Case("MATCH (n:Person) DELETE n", MIXED),
    Case("MATCH (a:Person), (b:Person) CREATE (a)-[:Knows]->(b) RETURN a.name", MIXED),
    Case("MATCH (n:Person) RETURN nextval('seq')", MIXED),
    Case("match (n) detach delete n", MIXED),
    Case("MATCH (n:Person) WITH n SET n.name = 'y' RETURN n.name", MIXED),
    # -- SCHEMA_DDL -------------------------------------------------------
    Case("CREATE NODE TABLE Animal(id INT64, name STRING, PRIMARY KEY(id))", DDL),
    Case("CREATE REL TABLE Likes(FROM Person TO Person, since DATE)", DDL),
    Case("CREATE REL TABLE GROUP Owns(FROM Person TO Person, FROM Person TO Animal)", DDL),
    Case("CREATE SEQUENCE seq2 START 1 INCREMENT 1", DDL),
    Case("ALTER TABLE Person ADD nick STRING DEFAULT 'x'", DDL),
    Case("DROP TABLE IF EXISTS Nope", DDL),
    Case("COMMENT ON TABLE Person IS 'people'", DDL),
    Case("CREATE NODE TABLE Copy AS MATCH (p:Person) RETURN p.name AS name", DDL),
    # -- BULK: server files -----------------------------------------------
    Case("LOAD FROM '/etc/passwd' RETURN *", BULK),
    Case("LOAD FROM '/etc/passwd' (header = false) RETURN *", BULK),
    Case("LOAD WITH HEADERS (a STRING) FROM '/etc/passwd' RETURN *", BULK),
    Case("LOAD/**/FROM '/etc/passwd' RETURN *", BULK),
    Case("lOaD\u180efRoM '/etc/passwd' RETURN *", BULK),
    Case("MATCH (n:Person) LOAD FROM 'x.csv' RETURN *", BULK),
    Case("LOAD FROM secret_df RETURN *", BULK),
    Case("COPY (MATCH (n) RETURN n) TO '/tmp/x.csv'", BULK),
    Case("COPY Person FROM 'people.csv'", BULK),
    Case("EXPORT DATABASE 'dump'", BULK),
    Case("IMPORT DATABASE 'dump'", BULK),
    Case("CREATE NODE TABLE t AS LOAD FROM '/etc/passwd' RETURN *", BULK),
    Case("CREATE NODE TABLE Ext(id INT64 PRIMARY KEY) WITH (storage = 'x')", BULK),
    Case("CALL read_csv_parallel('/etc/passwd') RETURN *", BULK, engine=False),
    Case("CALL read_csv_serial('/etc/passwd')", BULK, engine=False),
    Case("CALL read_parquet('x.parquet') RETURN *", BULK, engine=False),
    Case("CALL read_npy('x.npy') RETURN *", BULK, engine=False),
    # -- ADMIN: engine, session, databases, extensions, unknown -----------
    Case("CALL timeout=0", ADMIN),
    Case("CALL timeout = 0", ADMIN),
    Case("cAlL home_directory = '/'", ADMIN),
    Case("ATTACH 'other.lbug' AS other (dbtype lbug)", ADMIN),
    Case("DETACH other", ADMIN),
    Case("DETACH DELETE", ADMIN),
    Case("DETACH DELETE;", ADMIN),
    Case("USE other", ADMIN),
    Case("INSTALL json", ADMIN),
    Case("FORCE INSTALL json FROM 'http://example.com'", ADMIN),
    Case("LOAD EXTENSION '/tmp/evil.so'", ADMIN),
    Case("LOAD json", ADMIN),
    Case("LOAD CSV", ADMIN),
    Case("UPDATE json", ADMIN),
    Case("UNINSTALL json", ADMIN),
    Case("CHECKPOINT", ADMIN),
    Case("BEGIN TRANSACTION READ ONLY", ADMIN),
    Case("COMMIT", ADMIN),
    Case("ROLLBACK", ADMIN),
    Case("EXPLAIN EXPORT DATABASE 'd'", ADMIN),
    Case("EXPLAIN MATCH (n) RETURN n", ADMIN),
    Case("PROFILE MATCH (n) RETURN n", ADMIN),
    Case("ANALYZE", ADMIN),
    Case("CREATE GRAPH g", ADMIN),
    Case("USE GRAPH g", ADMIN),
    Case("DROP GRAPH g", ADMIN),
    Case("CREATE MACRO m(x) AS nextval('seq')", ADMIN),
    Case("CALL current_setting('home_directory') RETURN *", ADMIN),
    Case("CALL project_graph('g', ['Person'], ['Knows'])", ADMIN),
    Case("RETURN setseed(0.5)", ADMIN),
    Case(
        "CREATE NODE TABLE Part(id INT64, PRIMARY KEY(id)) PARTITION BY HASH(id) PARTITIONS 4",
        ADMIN,
    ),
    Case("SHOW TABLES", ADMIN),
    # -- exactly one statement ----------------------------------------------
    Case("RETURN 1; MATCH (n) DELETE n", MULTI),
    Case("COMMIT; CREATE (:Person {name: 'x'})", MULTI),
    Case("BEGIN TRANSACTION READ ONLY; COMMIT; MATCH (n) DETACH DELETE n", MULTI),
    Case("RETURN 1;;", MULTI),
    Case("RETURN 'a' ; DETACH DELETE", MULTI),
    Case("RETURN 1; /* c */ RETURN 2", MULTI),
    Case("RETURN 1 // c\r\n; DETACH DELETE n", MULTI),
    Case("RETURN 1 /* c */; MATCH (n) DELETE n // c", MULTI),
    # -- refused: not understood ------------------------------------------
    Case("RETURN 'O''Brien'", FAILED),
    Case("RETURN 'unterminated; MATCH (n) DELETE n", FAILED),
    Case("RETURN 1 /* unterminated; MATCH (n) DELETE n", FAILED),
    Case("RETURN `unterminated; MATCH (n) DELETE n", FAILED),
    Case("RETURN 1 /* **/ ; MATCH (n) DETACH DELETE n; /* */", FAILED),
    Case("RETURN 1 /***/", FAILED),
    Case("RETURN 'a\x00'", FAILED),
    Case("RETURN 1\x00; MATCH (n) DELETE n", FAILED),
    Case("DETACH\u200bDELETE n", FAILED),
    Case("MATCH (n) D\u0415TACH DELETE n", FAILED),
    Case("\uff2d\uff21\uff34\uff23\uff28 (n) RETURN n", FAILED),
    Case("RETURN 1\r MATCH (n) DELETE n", FAILED),
    Case("RETURN 1 // comment\r DETACH DELETE n", FAILED),
    Case("RETURN '\u202e'", FAILED),
    Case("RETURN '\\q'", FAILED),
    Case("WITH 1 AS delete RETURN delete", FAILED),
    Case("RETURN $`quoted`", FAILED),
    Case("MATCH (n) RETURN n.create", FAILED),
    Case("RETURN 1 != 2", FAILED),
    Case("MATCH (n:Person) SET n += {name: 'x'}", FAILED),
    Case("MATCH (n) DETACH DELETE", FAILED),
    Case("RETURN 007", FAILED),
    Case("REMOVE n.x", ADMIN),
    Case("", EMPTY),
    Case(" \n\t\u3000", EMPTY),
    Case("/* only a comment */ // and another", EMPTY),
    Case(";", EMPTY),
)


def _expect(case: Case) -> Analysis | QueryRefused:
    try:
        return analyze(case.query)
    except QueryRefused as refusal:
        return refusal


def test_corpus_is_large_and_covers_every_outcome() -> None:
    assert len(CORPUS) >= 80
    outcomes = {case.expected for case in CORPUS}
    assert set(QueryClass) <= outcomes
    assert {MULTI, FAILED, EMPTY} <= outcomes


@pytest.mark.parametrize("case", CORPUS, ids=[repr(c.query)[:60] for c in CORPUS])
def test_corpus(case: Case) -> None:
    """C15: each evasion attempt gets its class, or its refusal."""
    outcome = _expect(case)
    if isinstance(case.expected, QueryClass):
        assert isinstance(outcome, Analysis), outcome
        assert outcome.query_class is case.expected, outcome.reasons
        assert outcome.reasons
    else:
        assert isinstance(outcome, QueryRefused)
        assert outcome.reason == case.expected, outcome.public_message
        assert outcome.audit_event == "injection_attempt"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("MATCH (n) SET n.x = 1", "writes data: SET"),
        ("MATCH (n) DETACH DELETE n", "writes data: DETACH DELETE"),
        ("RETURN nextval('s')", "writes data: nextval()"),
        ("LOAD FROM '/etc/passwd' RETURN *", "file access: LOAD FROM"),
        ("COPY (RETURN 1) TO '/tmp/x'", "file access: COPY TO"),
        ("CALL timeout=0", "changes a setting: CALL <option> = …"),
        ("DETACH DELETE", "detaches a database: DETACH"),
        ("CALL read_csv_serial('/x')", "file access: CALL read_csv_serial"),
        ("MATCH (n) RETURN n", "reads data: MATCH"),
    ],
)
def test_reasons_name_the_deciding_construct(query: str, reason: str) -> None:
    assert reason in analyze(query).reasons


def test_reasons_never_quote_literals_or_comments() -> None:
    for case in CORPUS:
        outcome = _expect(case)
        shown = (
            " ".join(outcome.reasons) if isinstance(outcome, Analysis) else outcome.public_message
        )
        for secret in ("/etc/passwd", "evil.so", "people.csv", "example.com", "O'", "Brien"):
            assert secret not in shown, (case.query, shown)


def test_parameters_are_every_dollar_name_outside_literals() -> None:
    analysis = analyze(
        "MATCH (n {id: $id}) WHERE n.x IN $list AND n.y = $a$b AND n.z = $0 "
        "// $in_comment\n RETURN n, '$in_string', `$in_backticks` LIMIT $limit"
    )
    assert analysis.parameters == frozenset({"id", "list", "a$b", "0", "limit"})


def test_functions_and_table_functions_are_reported() -> None:
    analysis = analyze("CALL table_info('P') WITH * RETURN lower(name), count(*)")
    assert analysis.table_functions == frozenset({"table_info"})
    assert {"lower", "count"} <= analysis.functions
    assert analysis.statement == "QUERY"


@pytest.mark.parametrize(
    ("query", "statement"),
    [
        ("CREATE NODE TABLE T(id INT64 PRIMARY KEY)", "CREATE NODE TABLE"),
        ("COPY T FROM 'x'", "COPY"),
        ("CALL timeout=0", "CALL SETTING"),
        ("CREATE NODE TABLE t AS LOAD FROM 'x' RETURN *", "CREATE NODE TABLE"),
    ],
)
def test_statement_form_is_named(query: str, statement: str) -> None:
    assert analyze(query).statement == statement


# -- limits ----------------------------------------------------------------


def test_size_limit_counts_utf8_bytes() -> None:
    query = "RETURN '" + "é" * 60 + "'"  # 69 characters, 129 bytes
    assert analyze(query, max_bytes=129).query_class is READ
    with pytest.raises(QueryRefused) as refused:
        analyze(query, max_bytes=128)
    assert refused.value.reason == "QUERY_TOO_LARGE"
    assert refused.value.audit_event == "injection_attempt"


def test_default_limit_is_100_kb() -> None:
    assert MAX_QUERY_BYTES == 100_000
    body = "RETURN 1 // " + "x" * (MAX_QUERY_BYTES - 12)
    assert analyze(body).query_class is READ
    with pytest.raises(QueryRefused) as refused:
        analyze(body + "x")
    assert refused.value.reason == "QUERY_TOO_LARGE"


@pytest.mark.parametrize(
    "query",
    [
        "RETURN " + "(" * 5000 + "1" + ")" * 5000,
        "RETURN " + "[" * 5000 + "]" * 5000,
        "MATCH " + "(" * 5000 + "n" + ")" * 5000 + " RETURN n",
        "RETURN " + "CASE WHEN " * 3000 + "1",
        "RETURN " + "+".join(["1"] * 12_000),  # crashes the engine's binder
        "RETURN " + "NOT " * 20_000 + "true",  # crashes the engine too
        "WITH {a: 1} AS m RETURN m" + ".a" * 10_000,  # and so does this
        "MATCH (a0)" + "".join(f"-->(a{i})" for i in range(1, 18)) + " RETURN count(*)",
    ],
    ids=["parens", "lists", "patterns", "case", "plus", "not", "lookups", "hops"],
)
def test_budgets_refuse_what_would_crash_or_stall_the_engine(query: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        analyze(query)
    assert refused.value.reason == "QUERY_TOO_COMPLEX"
    assert refused.value.audit_event == "injection_attempt"


def test_budgets_leave_room_for_real_queries() -> None:
    hops = "MATCH (a0)" + "".join(f"-->(a{i})" for i in range(1, 17)) + " RETURN count(*)"
    assert analyze(hops).query_class is READ
    assert analyze("RETURN " + "+".join(["1"] * 3000)).query_class is READ
    assert analyze("RETURN [" + ", ".join(["1"] * 20_000) + "]").query_class is READ


def test_hostile_input_costs_linear_time() -> None:
    for query in (
        "RETURN '" + "a" * 99_000,  # unterminated string
        "RETURN 1 /*" + " **" * 33_000,  # unterminated comment full of stars
        "RETURN " + "`a``" * 24_000,  # unterminated quoted name
        "RETURN " + "+".join(["1"] * 49_000),
    ):
        with pytest.raises(QueryRefused):
            analyze(query)


def test_refusals_point_at_the_problem_without_quoting_it() -> None:
    with pytest.raises(QueryRefused) as refused:
        analyze("RETURN 1 +\n  'secret' SET")
    message = refused.value.public_message
    assert "line 2, column 12" in message
    assert "secret" not in message
    assert refused.value.metadata == {"line": "2", "column": "12"}


def test_non_text_is_refused() -> None:
    with pytest.raises(QueryRefused) as refused:
        analyze(b"RETURN 1")  # type: ignore[arg-type]
    assert refused.value.reason == FAILED


# -- authorize: the role matrix ----------------------------------------------

SAMPLES = {
    READ: "MATCH (n) RETURN n",
    WRITE: "CREATE (:Person {name: 'x'})",
    MIXED: "MATCH (n) SET n.age = 1",
    DDL: "CREATE NODE TABLE T(id INT64 PRIMARY KEY)",
    BULK: "LOAD FROM '/etc/passwd' RETURN *",
    ADMIN: "CHECKPOINT",
}
ALLOWED = {
    (Role.VIEWER, False): {READ},
    (Role.VIEWER, True): {READ},
    (Role.MEMBER, False): {READ, WRITE, MIXED},
    (Role.MEMBER, True): {READ, WRITE, MIXED},
    (Role.ADMIN, False): {READ, WRITE, MIXED},
    (Role.ADMIN, True): {READ, WRITE, MIXED, DDL},
}


@pytest.mark.parametrize("schema_rpc", [False, True])
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("query_class", list(QueryClass))
def test_role_matrix(query_class: QueryClass, role: Role, schema_rpc: bool) -> None:
    """C15: viewers read; members read and write; admins also change the
    schema through the schema RPCs; nobody runs BULK or ADMIN."""
    analysis = analyze(SAMPLES[query_class])
    assert analysis.query_class is query_class
    if query_class in ALLOWED[(role, schema_rpc)]:
        authorize(analysis, role, supplied_parameters=(), allow_schema_ddl=schema_rpc)
        return
    with pytest.raises(QueryRefused) as refused:
        authorize(analysis, role, supplied_parameters=(), allow_schema_ddl=schema_rpc)
    if query_class in (BULK, ADMIN):
        assert refused.value.reason == "QUERY_CLASS_FORBIDDEN"
        assert refused.value.audit_event == "injection_attempt"
    else:
        assert refused.value.reason == "QUERY_CLASS_NOT_PERMITTED"
        assert refused.value.audit_event == "privilege_escalation_attempt"
    assert refused.value.metadata["query_class"] == query_class.value
    assert refused.value.metadata["role"] == role.value


def test_every_referenced_parameter_must_be_supplied() -> None:
    analysis = analyze("MATCH (n {id: $id}) RETURN n LIMIT $limit")
    authorize(analysis, Role.VIEWER, supplied_parameters={"id": 1, "limit": 2, "extra": 3})
    with pytest.raises(QueryRefused) as refused:
        authorize(analysis, Role.VIEWER, supplied_parameters=["id"])
    assert refused.value.reason == "MISSING_PARAMETER"
    assert "$limit" in refused.value.public_message


def test_role_is_checked_before_parameters() -> None:
    analysis = analyze("CREATE (:Person {name: $name})")
    with pytest.raises(QueryRefused) as refused:
        authorize(analysis, Role.VIEWER, supplied_parameters=())
    assert refused.value.reason == "QUERY_CLASS_NOT_PERMITTED"


def test_refusal_messages_carry_the_reasons() -> None:
    with pytest.raises(QueryRefused) as refused:
        authorize(analyze("CALL timeout=0"), Role.ADMIN, supplied_parameters=())
    assert "changes a setting" in refused.value.public_message
