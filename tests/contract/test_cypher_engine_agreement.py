"""C15: the query firewall agrees with the real LadybugDB engine.

The evasion corpus of ``tests/unit/test_cypher_firewall.py`` is replayed
against ``ladybug`` in a temporary directory:

* what the firewall calls exactly one statement, the engine's ``prepare()``
  (which refuses more than one) never calls several, and what the firewall
  refuses as several statements the engine cannot prepare as one;
* what the firewall parses (READ, WRITE, MIXED, SCHEMA_DDL) the engine's
  parser accepts too, so the firewall has not read it some other way;
* what the firewall calls READ changes nothing inside ``BEGIN TRANSACTION
  READ ONLY``, and the engine's own verdict does not call it a write.

Every engine call uses a fresh connection: a connection caches prepared
statements, failed ones included. Entries that crash the engine are never
given to it in this process; a seeded mutation run goes through a child
process, so a crash there costs the child only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import ladybug
import pytest

from graphgate.server.errors import QueryRefused
from graphgate.server.services.cypher import Analysis, QueryClass, analyze

SCHEMA = (
    "CREATE NODE TABLE Person(name STRING, age INT64, url STRING, PRIMARY KEY(name))",
    "CREATE REL TABLE Knows(FROM Person TO Person)",
    "CREATE SEQUENCE seq",
    "CREATE (:Person {name: 'ann', age: 30, url: 'https://a'})"
    "-[:Knows]->(:Person {name: 'bob', age: 40, url: 'https://b'})",
    "MATCH (b:Person {name: 'bob'}) CREATE (b)-[:Knows]->(:Person {name: 'cy', age: 50})",
    "RETURN nextval('seq')",
)


def _load_corpus() -> ModuleType:
    path = Path(__file__).parents[1] / "unit" / "test_cypher_firewall.py"
    spec = importlib.util.spec_from_file_location("_cypher_firewall_corpus", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = [case for case in _load_corpus().CORPUS if case.engine]
PARSED = (QueryClass.READ, QueryClass.WRITE, QueryClass.MIXED, QueryClass.SCHEMA_DDL)


def _verdict(query: str) -> Analysis | QueryRefused:
    try:
        return analyze(query)
    except QueryRefused as refusal:
        return refusal


def _open(path: Path) -> ladybug.Database:
    database = ladybug.Database(str(path), buffer_pool_size=64 << 20, max_db_size=1 << 30)
    connection = ladybug.Connection(database)
    for statement in SCHEMA:
        connection.execute(statement)
    connection.close()
    return database


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ladybug.Database]:
    database = _open(tmp_path_factory.mktemp("prepare") / "graph.lbug")
    yield database
    database.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ladybug.Database]:
    database = _open(tmp_path_factory.mktemp("scratch") / "graph.lbug")
    yield database
    database.close()


@pytest.fixture(autouse=True)
def _relative_paths_land_in_a_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)


def _prepare_error(database: ladybug.Database, query: str) -> str | None:
    """The engine's error for preparing ``query`` on a fresh connection, if any."""
    connection = ladybug.Connection(database)
    try:
        with warnings.catch_warnings():
            # prepare() is deprecated in favour of execute(), but it is the
            # only way to ask the engine to parse without running anything.
            warnings.simplefilter("ignore", DeprecationWarning)
            statement = connection.prepare(query)
        return None if statement.is_success() else statement.get_error_message()
    finally:
        connection.close()


def _snapshot(database: ladybug.Database) -> tuple[Any, ...]:
    connection = ladybug.Connection(database)
    try:
        return tuple(
            connection.execute(query).get_all()  # type: ignore[union-attr]
            for query in (
                "MATCH (n:Person) RETURN n.name, n.age, n.url ORDER BY n.name",
                "MATCH ()-[r:Knows]->() RETURN count(r)",
                "CALL show_tables() RETURN name ORDER BY name",
                "RETURN currval('seq')",
            )
        )
    finally:
        connection.close()


def _ids(cases: list[Any]) -> list[str]:
    return [repr(case.query)[:60] for case in cases]


@pytest.mark.parametrize("case", CORPUS, ids=_ids(CORPUS))
def test_statement_count_agrees(engine: ladybug.Database, case: Any) -> None:
    """C15: one statement for the firewall is one statement for the engine."""
    verdict = _verdict(case.query)
    error = _prepare_error(engine, case.query)
    if isinstance(verdict, Analysis):
        assert error is None or "multiple statements" not in error, error
    elif verdict.reason == "MULTIPLE_STATEMENTS":
        assert error is not None, "the engine prepared it as one statement"


PARSED_CASES = [case for case in CORPUS if case.expected in PARSED]


@pytest.mark.parametrize("case", PARSED_CASES, ids=_ids(PARSED_CASES))
def test_what_the_firewall_parses_the_engine_parses(engine: ladybug.Database, case: Any) -> None:
    error = _prepare_error(engine, case.query)
    assert error is None or "Parser exception" not in error, error


READ_CASES = [case for case in CORPUS if case.expected is QueryClass.READ]


@pytest.mark.parametrize("case", READ_CASES, ids=_ids(READ_CASES))
def test_reads_change_nothing_in_a_read_only_transaction(
    scratch: ladybug.Database, case: Any
) -> None:
    """C15: a READ verdict holds in the engine's read-only transaction."""
    assert _verdict(case.query).query_class is QueryClass.READ  # type: ignore[union-attr]
    before = _snapshot(scratch)
    connection = ladybug.Connection(scratch)
    error = ""
    try:
        connection.execute("BEGIN TRANSACTION READ ONLY")
        try:
            connection.execute(case.query, dict(case.params))
        except RuntimeError as failure:  # binder errors are fine: nothing ran
            error = str(failure)
        with contextlib.suppress(RuntimeError):  # an error already ended it
            connection.execute("ROLLBACK")
    finally:
        connection.close()
    assert "read-only" not in error, error
    assert _snapshot(scratch) == before


_MUTATION_RUN = r"""
import json, random, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import ladybug
from graphgate.server.errors import QueryRefused
from graphgate.server.services.cypher import analyze

seeds, schema, count = json.load(sys.stdin)
database = ladybug.Database(None, buffer_pool_size=64 << 20, max_db_size=1 << 30)
setup = ladybug.Connection(database)
for statement in schema:
    setup.execute(statement)
fragments = [
    "DELETE n", "DETACH DELETE n", "DETACH DELETE", "SET n.age = 1", "CREATE (x:Person)",
    "MERGE (y:Person {name: 'z'})", "LOAD FROM 'x.csv'", "CALL show_tables()", "CALL timeout=0",
    ";", "; RETURN 1", "RETURN 1", "WITH n", "MATCH (n:Person)", "nextval('seq')", "'", '"', "`",
    "/*", "*/", "//", "\n", "$p", "(", ")", "[", "]", "{", "}", ",", ".", ":", "-", ">", "<",
    "=", "*", "|", "n", "delete", "AS", "WHERE", "n.delete", "COPY", "UNION", "'https://'",
    "'/*'", "`a;b`", "'a;b'", "EXISTS { MATCH (n)-[:Knows]->() }",
]
separators = [
    " ", "\u180e", "\u00a0", "\u2028", "\u3000", "\t", "/**/", "/* x */", "\n", "\r\n", "// c\n",
]
rng = random.Random(20240229)
problems = []
for _ in range(count):
    query = rng.choice(seeds)
    for _ in range(rng.randint(1, 3)):
        spaces = [i for i, c in enumerate(query) if c == " "] or [len(query)]
        at = rng.choice(spaces)
        if rng.random() < 0.6:
            query = query[:at] + " " + rng.choice(fragments) + " " + query[at:]
        else:
            query = query[:at] + rng.choice(separators) + query[at + 1:]
    try:
        verdict = analyze(query).query_class.value
    except QueryRefused as refusal:
        verdict = refusal.reason
    if verdict in ("QUERY_ANALYSIS_FAILED", "QUERY_TOO_COMPLEX", "EMPTY_QUERY"):
        continue
    print(repr(query), file=sys.stderr, flush=True)  # the culprit, if the engine crashes
    prepared = ladybug.Connection(database).prepare(query)
    error = None if prepared.is_success() else prepared.get_error_message()
    if verdict == "MULTIPLE_STATEMENTS" and error is None:
        problems.append(["engine prepared one statement", query])
    if verdict != "MULTIPLE_STATEMENTS" and error and "multiple statements" in error:
        problems.append(["engine saw several statements", query])
    if verdict == "READ":
        connection = ladybug.Connection(database)
        connection.execute("BEGIN TRANSACTION READ ONLY")
        try:
            connection.execute(query)
        except RuntimeError as exc:
            if "read-only" in str(exc):
                problems.append(["engine calls it a write", query])
        connection.close()
print(json.dumps(problems))
"""


def test_seeded_mutations_agree_with_the_engine() -> None:
    """Insert keywords, quotes, comments and separators into corpus queries; the
    statement count and the READ verdict must still agree with the engine."""
    seeds = [
        case.query
        for case in CORPUS
        if case.expected in (QueryClass.READ, QueryClass.WRITE, QueryClass.MIXED)
        and not case.params
    ]
    child = subprocess.run(
        [sys.executable, "-c", _MUTATION_RUN],
        input=json.dumps([seeds, SCHEMA, 600]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    culprit = child.stderr.strip().splitlines()[-1:] if child.stderr else []
    assert child.returncode == 0, f"engine process died ({child.returncode}) on {culprit}"
    assert json.loads(child.stdout) == []
