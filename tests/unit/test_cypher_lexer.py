"""C15: the firewall's lexer reads LadybugDB's Cypher exactly as the engine does.

Each fact here was measured against the ``ladybug`` 0.22 wheel (LADYBUG.md);
the engine-agreement contract test replays the corpus against the engine.
"""

from __future__ import annotations

import pytest

from graphgate.server.services.cypher.lexer import Kind, lex, token_offsets, tokenize
from graphgate.server.services.cypher.model import CypherSyntaxError

#: Every character of the engine's WHITESPACE rule.
ENGINE_WHITESPACE = (
    " \t\n\x0b\x0c\x1c\x1d\x1e\x1f\u00a0\u1680\u180e"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def keys(text: str) -> list[str]:
    return lex(text).keys


def refusal(text: str) -> CypherSyntaxError:
    with pytest.raises(CypherSyntaxError) as raised:
        lex(text)
    return raised.value


# -- whitespace and comments ------------------------------------------------


@pytest.mark.parametrize("space", list(ENGINE_WHITESPACE), ids=lambda c: f"U+{ord(c):04X}")
def test_engine_whitespace_separates_words(space: str) -> None:
    assert keys(f"DETACH{space}DELETE{space}n") == ["DETACH", "DELETE", "N", ""]


def test_crlf_is_whitespace_but_a_lone_cr_is_refused() -> None:
    assert keys("RETURN\r\n1") == ["RETURN", "#", ""]
    for text in ("RETURN\r1", "RETURN 1\r", "RETURN 'a\rb'", "RETURN 1 // c\r DELETE", "/*\r*/"):
        assert refusal(text).message == "carriage return outside CRLF"


@pytest.mark.parametrize(
    "char",
    ["\u0085", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u061c"],
    ids=lambda c: f"U+{ord(c):04X}",
)
def test_characters_python_or_unicode_call_spaces_are_refused(char: str) -> None:
    error = refusal(f"DETACH{char}DELETE n")
    assert error.offset == len("DETACH")


def test_comments_count_as_whitespace() -> None:
    assert keys("DETACH/**/DELETE/* x */n// y\n") == ["DETACH", "DELETE", "N", ""]


def test_line_comment_ends_only_at_lf() -> None:
    assert keys("RETURN 1 // c\u2028 DETACH DELETE n\u2029 x") == ["RETURN", "#", ""]
    assert keys("RETURN 1 // c\n+ 2") == ["RETURN", "#", "+", "#", ""]
    assert keys("RETURN 1 // c\r\n+ 2") == ["RETURN", "#", "+", "#", ""]


def test_block_comments_do_not_nest() -> None:
    assert keys("/* /* */ RETURN 1") == ["RETURN", "#", ""]
    assert keys("/* /* */ */") == ["*", "/", ""]


@pytest.mark.parametrize(
    "text",
    ["RETURN 1 /***/", "RETURN 1 /* **/", "RETURN /* **/ 1 */ 1", "RETURN /*/**/x */ 1"],
)
def test_block_comment_ends_the_engine_and_a_reader_disagree_on_are_refused(text: str) -> None:
    # The engine consumes "**" as one unit, so "/* **/" ends at a later "*/".
    assert "block comment" in refusal(text).message


def test_comment_markers_inside_strings_and_names_are_text() -> None:
    assert keys("RETURN 'https://x', \"/*\", `//` // c") == [
        "RETURN", "'", ",", "'", ",", "`", "",
    ]  # fmt: skip


# -- strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        r"'a\'b'",
        r'"a\"b"',
        r"'\\'",
        r"'\b\f\n\r\t\B\F\N\R\T'",
        r"'\x41'",
        r"'\u00e9'",
        r"'\U0001F600'",
    ],
)
def test_backslash_escapes(literal: str) -> None:
    assert keys(f"RETURN {literal}") == ["RETURN", "'", ""]


@pytest.mark.parametrize("literal", [r"'\q'", r"'\x4'", r"'\u12'", r"'\'", "'abc", '"abc'])
def test_invalid_escapes_and_unterminated_strings_are_refused(literal: str) -> None:
    error = refusal(f"RETURN {literal} // x")
    assert error.offset == len("RETURN ")
    assert "string" in error.message


def test_doubled_quote_is_not_an_escape() -> None:
    # 'O''Brien' is two adjacent strings (the engine then fails to parse).
    assert keys("RETURN 'O''Brien'") == ["RETURN", "'", "'", ""]


def test_keywords_and_semicolons_in_strings_do_not_count() -> None:
    lexed = lex("RETURN 'x; DETACH DELETE n', \"; CALL timeout=0\"")
    assert lexed.keys == ["RETURN", "'", ",", "'", ""]
    assert lexed.semicolons == 0


def test_strings_may_hold_any_printable_text() -> None:
    assert keys("RETURN 'é ⟩ \u2028 \u200d \U0001d518 \t\n'") == ["RETURN", "'", ""]


# -- refused characters -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "RETURN 1\x00",
        "RETURN 'a\x00b'",
        "RETURN `a\x00`",
        "RETURN 1 // \x00",
        "RETURN 1 /* \x00 */",
        "RETURN '\x07'",
        "RETURN '\x7f'",
        "RETURN '\x9b'",
        "RETURN '\u202e'",
        "RETURN '\u2066'",
        "RETURN '\ud800'",
    ],
)
def test_control_bidi_and_surrogate_characters_are_refused_everywhere(text: str) -> None:
    culprit = next(i for i, c in enumerate(text) if not c.isprintable() and c != " ")
    assert refusal(text).offset == culprit


@pytest.mark.parametrize(
    "text",
    [
        "MATCH (n) D\u0415TACH DELETE n",  # Cyrillic IE
        "MATCH (n) \uff24ETACH DELETE n",  # fullwidth D
        "RETURN caf\u00e9",
        "RETURN \u212a",  # Kelvin sign, which Python upper-cases to K
    ],
)
def test_non_ascii_letters_outside_literals_are_refused(text: str) -> None:
    assert "not allowed outside strings" in refusal(text).message


# -- names, parameters, numbers, punctuation ------------------------------


def test_backtick_names() -> None:
    lexed = lex("RETURN `DETACH DELETE`, `a``b`, `é`")
    assert lexed.keys == ["RETURN", "`", ",", "`", ",", "`", ""]
    assert list(lexed.quoted.values()) == ["DETACH DELETE", "a`b", "é"]
    assert "empty" in refusal("RETURN ``").message
    assert "quoted name" in refusal("RETURN `abc").message


def test_words_are_case_insensitive_keys() -> None:
    assert keys("mAtCh (N) ReTuRn n") == ["MATCH", "(", "N", ")", "RETURN", "N", ""]


def test_identifiers_continue_with_dollar() -> None:
    assert keys("RETURN a$b") == ["RETURN", "A$B", ""]


def test_parameters() -> None:
    lexed = lex("RETURN $a, $a$b, $_x1, $0, $12, '$no', `$no` // $no")
    assert lexed.parameters == frozenset({"a", "a$b", "_x1", "0", "12"})
    assert lexed.keys.count("$") == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RETURN $`x`", "quoted parameter names are not supported"),
        ("RETURN $ x", "invalid parameter"),
        ("RETURN $01", "parameter number with a leading zero"),
        ("RETURN $create", "reserved word used as a parameter name"),
    ],
)
def test_parameters_the_engine_reads_differently_are_refused(text: str, message: str) -> None:
    assert refusal(text).message == message


def test_numbers() -> None:
    assert keys("RETURN 1, 1.5, .5, 1e3, 1.5E-3, 0") == [
        "RETURN", "#", ",", "#.", ",", "#.", ",", "#.", ",", "#.", ",", "#", "",
    ]  # fmt: skip
    assert keys("[*1..3]") == ["[", "*", "#", "..", "#", "]", ""]
    assert keys("n.5") == ["N", "#.", ""]
    assert "leading zero" in refusal("RETURN 007").message


def test_multi_character_symbols() -> None:
    assert keys("<> <= >= =~ << >> != .. <-->") == [
        "<>", "<=", ">=", "=~", "<<", ">>", "!=", "..", "<", "-", "-", ">", "",
    ]  # fmt: skip


def test_unicode_dashes_and_arrowheads_are_marked() -> None:
    assert keys("(a)\u2013[:R]\u2212\u27e9(b)\uff1c\uff0d(c)") == [
        "(", "A", ")", "~-", "[", ":", "R", "]", "~-", "~>", "(", "B", ")", "~<", "~-",
        "(", "C", ")", "",
    ]  # fmt: skip


def test_semicolons_are_counted() -> None:
    assert lex("RETURN 1; RETURN 2;").semicolons == 2
    assert lex("RETURN ';' // ;\n/* ; */ `;`").semicolons == 0


# -- positions and linear time ----------------------------------------------


def test_tokenize_reports_kinds_and_offsets() -> None:
    tokens = tokenize("MATCH (n) /* c */ WHERE n.x = $p RETURN `q`, 'x'")
    assert [(t.kind, t.offset) for t in tokens] == [
        (Kind.NAME, 0), (Kind.PUNCT, 6), (Kind.NAME, 7), (Kind.PUNCT, 8),
        (Kind.NAME, 18), (Kind.NAME, 24), (Kind.PUNCT, 25), (Kind.NAME, 26),
        (Kind.PUNCT, 28), (Kind.PARAM, 30), (Kind.NAME, 33), (Kind.QNAME, 40),
        (Kind.PUNCT, 43), (Kind.STRING, 45), (Kind.EOF, 48),
    ]  # fmt: skip
    assert tokens[11].text == "q"
    assert token_offsets("RETURN 1 ;  ") == [0, 7, 9, 12]


def test_refusals_carry_the_offset_of_the_culprit() -> None:
    assert refusal("RETURN 1 +\n 'a").offset == 12
    assert refusal("RETURN 1, 2 \u0415").offset == 12


def test_unterminated_literals_cost_linear_time() -> None:
    for text in ("'" + "a" * 100_000, "/*" + " **" * 33_000, "`" + "a``" * 33_000, "//" + "\r" * 9):
        refusal(text)
