"""C16: engine messages reach clients only after internals are scrubbed."""

from __future__ import annotations

import time

import pytest

from graphgate.server.engine.scrub import MAX_OUTPUT_CHARS, PATTERN_COUNT, rule_names, scrub

# (rule, message, what must disappear, what the scrubbed text contains instead)
CASES = [
    ("python_traceback_header", "Traceback (most recent call last):\nboom", "Traceback", "boom"),
    ("python_frame", 'File "/srv/app/engine.py", line 12, in run', "/srv/app", "<frame>"),
    (
        "native_frame",
        "#3  0x00007f3a2b1c in lbug::main::Connection::query",
        "lbug::main",
        "<frame>",
    ),
    ("source_location", "assertion failed at storage/wal.cpp:123", "wal.cpp", "<src>"),
    (
        "pem_block",
        "key -----BEGIN PRIVATE KEY-----\nMIIBVwIBADANBgkq\n-----END PRIVATE KEY-----",
        "MIIBVwIBADANBgkq",
        "<secret>",
    ),
    ("jwt", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig-part_x", "eyJhbGci", "<secret>"),
    ("bearer", "Authorization: Bearer abcdef123456789", "abcdef123456789", "Bearer <secret>"),
    ("aws_access_key", "key AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE", "<secret>"),
    ("github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abc", "<secret>"),
    ("slack_token", "xoxb-1234567890-abcdefghij", "xoxb-", "<secret>"),
    ("graphgate_key", "gg_live_" + "ab" * 32, "abababab", "<secret>"),
    ("secret_assignment", "connect password=hunter2 user=x", "hunter2", "password=<secret>"),
    ("url", "fetch https://internal.example.com/a?b=c failed", "internal.example", "<url>"),
    ("url", "postgresql://admin:pw@db:5432/app refused", "admin:pw", "<url>"),
    ("unix_socket", "connect unix:/run/graphgate/w0.sock refused", "/run/graphgate", "<url>"),
    ("windows_path", r"open C:\Users\bob\secret.csv", "bob", "<path>"),
    ("unc_path", r"open \\fileserver\share\x.csv", "fileserver", "<path>"),
    ("home_path", "read ~/data/x.csv", "~/data", "<path>"),
    ("relative_path", "read ../graphs/x.csv", "../graphs", "<path>"),
    ("posix_path_known_root", "cannot open /etc", "/etc", "<path>"),
    (
        "posix_path",
        "Copy exception: Error in file /srv/gg/graphs/abc/up.csv on line 2",
        "/srv",
        "<path>",
    ),
    ("email", "owner bob.smith+x@example.org", "bob.smith", "<email>"),
    ("ipv4", "connect 10.1.2.3:6379 refused", "10.1.2.3", "<ip>"),
    ("ipv6", "connect fe80::1 and [2001:db8::7]:443", "2001:db8", "<ip>"),
    ("hostname", "resolve db.prod.internal failed", "db.prod", "<host>"),
    ("localhost", "connect localhost:5432 refused", "localhost", "<host>"),
    ("uuid", "graph 0b5e2b1e-1c1a-4d6e-9f7a-8e2f7c1d9a3b busy", "0b5e2b1e", "<id>"),
    ("memory_address", "null pointer at 0x7ffdeadbeef0", "0x7ffdeadbeef0", "<addr>"),
    ("sql", "ERROR near SELECT password FROM users WHERE id=1", "users", "<sql>"),
    ("long_hex", "digest " + "a1" * 24, "a1a1a1", "<secret>"),
    (
        "long_base64",
        "blob dGhpcyBpcyBhIHZlcnkgc2VjcmV0IFRva2VuIDEyMzQ1Njc4OTA=",
        "dGhpcyBp",
        "<secret>",
    ),
]


def test_at_least_twenty_patterns() -> None:
    assert PATTERN_COUNT >= 20
    assert {case[0] for case in CASES} == set(rule_names())


@pytest.mark.parametrize(("rule", "message", "hidden", "shown"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_hides_what_it_names(rule: str, message: str, hidden: str, shown: str) -> None:
    out = scrub(message)
    assert hidden not in out, (rule, out)
    assert shown in out, (rule, out)


def test_literals_such_as_the_data_directory_go_first() -> None:
    out = scrub("Binder exception: file gg-data/graphs/x missing", literals=["gg-data"])
    assert "gg-data" not in out
    assert "<path>" in out


@pytest.mark.parametrize(
    "message",
    [
        "Binder exception: Table Nope does not exist.",
        "Binder exception: Cannot find property info for n. RETURN n.info",
        "Parser exception: mismatched input '<EOF>' expecting {DISTINCT, SP} (line: 1, offset: 16)"
        '\n"MATCH (n) RETURN"',
        "Runtime exception: Divide by zero.",
        "Overflow exception: Value 9223372036854775807 + 1 is not within INT64 range.",
        "RETURN a/b, 3 / 4, x[1:2], 12:34:56, this_is_a_long_property_name_of_forty_characters",
    ],
)
def test_ordinary_query_errors_survive_unchanged(message: str) -> None:
    """Users need these messages to fix their queries."""
    assert scrub(message) == message


def test_output_is_capped_and_control_characters_replaced() -> None:
    out = scrub("x\x00y\x1b[31m" + "z " * 5000)
    assert "\x00" not in out
    assert "\x1b" not in out
    assert len(out) <= MAX_OUTPUT_CHARS


@pytest.mark.parametrize(
    "unit", ["a.", "a-", "1.", "A1b-", "password", "/", "[::", "a@", ".c:1", "'"]
)
def test_adversarial_input_is_scrubbed_in_linear_time(unit: str) -> None:
    text = unit * (4000 // len(unit))
    started = time.perf_counter()
    scrub(text)
    assert time.perf_counter() - started < 0.25
