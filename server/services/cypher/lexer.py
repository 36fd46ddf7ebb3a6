"""One left-to-right lexer pass over LadybugDB's Cypher dialect.

Strings, comments, backtick-quoted names and parameters are recognised
together, in the order they occur, exactly as the engine's ANTLR lexer does
(``Cypher.g4`` of LadybugDB 0.22, checked statement by statement against the
wheel): string literals take backslash escapes only (``''`` is not an escape),
``//`` comments end only at LF, ``/* */`` comments do not nest, and the
whitespace set is the engine's, wider than Python's (U+180E, U+1680, …).

Security: a keyword only counts when the lexer produced it as a token, so a
keyword inside a string, a comment or backticks never counts, and comment
markers inside strings (``'https://'``) never hide code. Anything the lexer
does not understand is refused, never skipped: NUL and other control
characters (also inside literals), bidirectional-override characters, lone
surrogates, a CR that is not part of CRLF, zero-width characters and any
non-ASCII character outside literals (lookalike or fullwidth letters, which
the engine would read as identifiers rather than keywords), invalid escapes,
unterminated literals and comments, quoted parameter names (the engine keeps
their backticks), and block comments whose end the engine and a naive reader
would place differently (``/* **/ … */``: the engine consumes ``**`` as one
unit and ends the comment at the later ``*/``). The regular expression below
only recognises the one token that starts where the previous one ended (a
catch-all group takes any character that starts no token, and the lexer
refuses it); nothing is ever decided by searching the text.
"""

from __future__ import annotations

import enum
import re
from typing import Final, NamedTuple

from .keywords import RESERVED
from .model import CypherSyntaxError

# The engine's WHITESPACE rule, minus CR, which is accepted only inside CRLF.
_WS = (
    " \\t\\n\\x0b\\x0c\\x1c-\\x1f\\u00a0\\u1680\\u180e\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# Never accepted, not even inside literals: C0/C1 controls the grammar does
# not call whitespace, DEL, bidi controls and lone surrogates (they cannot be
# encoded, and hide text from whoever reads the audit log).
_REFUSED = (
    "\\x00-\\x08\\x0e-\\x1b\\x7f-\\x9f\\u061c\\u200e\\u200f"
    "\\u202a-\\u202e\\u2066-\\u2069\\ud800-\\udfff"
)
# Inside literals CR is excluded too and re-admitted only as CRLF.
_BANNED = _REFUSED + "\\r"
_ESCAPE = r"\\(?:[\\'\"bBfFnNrRtT]|[xX][0-9A-Fa-f]{2}|[uU][0-9A-Fa-f]{8}|[uU][0-9A-Fa-f]{4})"
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*+"
# One token, as the engine's lexer would take it (longest match). Possessive
# quantifiers keep every match linear: no backtracking on hostile input.
_TOKEN = "|".join(
    [
        _IDENT,
        r"(?:[0-9]++(?:\.[0-9]++)?|\.[0-9]++)(?:[eE]-?[0-9]++)?",
        f"//[^\\n{_BANNED}]*+(?:\\r\\n|\\n|\\Z)",
        f"/\\*(?:[^*{_BANNED}]++|\\r\\n|\\*[^/{_BANNED}]|\\*\\r\\n)*+\\*/",
        # "/" is division only when no comment could start there.
        r"\.\.|<>|<=|>=|=~|<<|>>|!=|/(?![*/])|[-(),.:;=\[\]{}<>+*%^&|!]",
        f"'(?:[^'\\\\{_BANNED}]++|\\r\\n|{_ESCAPE})*+'",
        f'"(?:[^"\\\\{_BANNED}]++|\\r\\n|{_ESCAPE})*+"',
        f"(?:`(?:[^`{_BANNED}]++|\\r\\n)*+`)++",
        f"\\$(?:{_IDENT}|[0-9]++)",
        # Relationship dashes and arrowheads the grammar also accepts; U+00AD,
        # the invisible soft hyphen, is deliberately left out.
        "[\\u2010-\\u2015\\u2212\\ufe58\\ufe63\\uff0d\\u27e8\\u3008\\ufe64\\uff1c"
        "\\u27e9\\u3009\\ufe65\\uff1e]",
        "\\Z",
    ]
)
# Group 1 is the token; group 2 catches any other character, which is refused.
_MASTER: Final = re.compile(f"(?:[{_WS}]++|\\r\\n)*+(?:({_TOKEN})|((?s:.)))")
# For error messages only: the first refused character, or a CR outside CRLF.
_BAD_CHAR: Final = re.compile(f"\\r(?!\\n)|[{_REFUSED}]")
_INVISIBLE: Final = frozenset("\u00ad\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff")

_WORD_START: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
# First characters of tokens that are always punctuation ("/" and "." are not).
_SYMBOL_START: Final = frozenset("(),:;=[]{}<>+*%^&|!-")
_DIGITS: Final = frozenset("0123456789")
_ALT_KEYS: Final = {
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "~-"),
    **dict.fromkeys("\u27e8\u3008\ufe64\uff1c", "~<"),
    **dict.fromkeys("\u27e9\u3009\ufe65\uff1e", "~>"),
}
_SYMBOLS: Final = frozenset(
    {"..", "<>", "<=", ">=", "=~", "<<", ">>", "!=", "/", "."} | set("(),:;=[]{}<>+*%^&|!-")
)
#: Keys that can never be a name: every marker and symbol, and reserved words.
NOT_NAMES: Final = RESERVED | _SYMBOLS | {"'", "#", "#.", "$", "~-", "~<", "~>", ""}


class Kind(enum.Enum):
    """Token kinds (for tests and tools; the parser works on keys)."""

    NAME = "name"
    QNAME = "qname"
    STRING = "string"
    NUMBER = "number"
    PARAM = "param"
    PUNCT = "punct"
    EOF = "eof"


class Token(NamedTuple):
    """One token: its kind, parser key, source text and offset."""

    kind: Kind
    key: str
    text: str
    offset: int


class Lexed(NamedTuple):
    """A text's tokens in the form the parser reads.

    ``keys[i]`` is what the parser compares: a word's upper-case text, a
    symbol, or a marker no word or symbol can equal: ``'`` string, ``#``
    integer, ``#.`` other number, ``$`` parameter, a backtick for a quoted
    name, ``~-``/``~<``/``~>`` a Unicode dash or arrowhead, ``""`` the end.
    ``quoted`` maps the index of each quoted name to its unquoted text.
    ``semicolons`` counts ``;`` tokens, ``parameters`` are the ``$`` names.
    """

    keys: list[str]
    quoted: dict[int, str]
    semicolons: int
    parameters: frozenset[str]


def lex(text: str) -> Lexed:
    """Split ``text`` into keys, dropping whitespace and comments.

    Raises :class:`CypherSyntaxError` (with the offset of the culprit) for
    anything the engine would lex differently or that the firewall refuses to
    reason about (see the module docstring). Cost: one regular-expression
    scan of the text plus well under a microsecond per token.
    """
    keys: list[str] = []
    quoted: dict[int, str] = {}
    parameters: set[str] = set()
    append = keys.append
    raw = 0
    try:
        for raw, (tok, other) in enumerate(_MASTER.findall(text)):  # noqa: B007 (read on error)
            first = tok[:1]
            if first in _WORD_START:
                append(tok.upper())
            elif first in _SYMBOL_START or tok == ".":
                append(tok)
            elif tok:
                key = _special(tok, len(keys), quoted, parameters)
                if key is not None:
                    append(key)
            elif other:
                raise CypherSyntaxError("", -1)  # _located explains it
            else:  # the end (trailing whitespace can make findall report it twice)
                append("")
                break
    except CypherSyntaxError as err:
        raise _located(text, raw, err) from None
    return Lexed(keys, quoted, keys.count(";"), frozenset(parameters))


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` with kinds and offsets, ending with ``EOF``.

    Same recognition as :func:`lex` (which it calls first, so it raises the
    same errors); slower, for tests, tools and error positions.
    """
    lexed = lex(text)
    offsets = token_offsets(text)
    return [
        Token(_kind(key), key, lexed.quoted.get(index, _source(text, offsets, index)), offset)
        for index, (key, offset) in enumerate(zip(lexed.keys, offsets, strict=True))
    ]


def token_offsets(text: str, upto: int | None = None) -> list[int]:
    """Start offsets of the tokens :func:`lex` keeps (comments dropped).

    With ``upto``, stops after token number ``upto``: error reports need one
    offset, and rescanning a 100 KB text to the end would cost milliseconds.
    """
    offsets: list[int] = []
    for match in _MASTER.finditer(text):
        tok = match.group(1)
        if tok is None:  # a refused character: lex() raises before anyone asks
            break
        if not (tok.startswith("//") or tok.startswith("/*")):
            offsets.append(match.start(1))
            if upto is not None and len(offsets) > upto:
                break
        if not tok:
            break
    return offsets


def _special(tok: str, index: int, quoted: dict[int, str], parameters: set[str]) -> str | None:
    """The key of a token that is not a plain word or symbol; None for comments."""
    first = tok[0]
    if first in _DIGITS or (first == "." and tok[1:2] in _DIGITS):
        if not tok.isdigit():
            return "#."
        if len(tok) > 1 and first == "0":
            # The engine lexes "007" as "0", "0", "7"; refuse rather than guess.
            raise CypherSyntaxError("integer literal with a leading zero", -1)
        return "#"
    if tok in _SYMBOLS:
        return tok
    if first == "/":  # a comment: "/" alone is in _SYMBOLS
        if first + tok[1] == "/*" and tok.find("*/", 2) != len(tok) - 2:
            raise CypherSyntaxError("ambiguous block comment end", -1)
        return None
    if first in "'\"":
        return "'"
    if first == "`":
        name = tok[1:-1].replace("``", "`")  # `a``b` is the name a`b
        if not name:
            raise CypherSyntaxError("empty quoted name", -1)
        quoted[index] = name
        return "`"
    if first == "$":
        parameters.add(_parameter(tok[1:]))
        return "$"
    return _ALT_KEYS[tok]


def _parameter(name: str) -> str:
    if name.isdigit():
        if len(name) > 1 and name[0] == "0":
            raise CypherSyntaxError("parameter number with a leading zero", -1)
        return name
    if name.upper() in RESERVED:
        raise CypherSyntaxError("reserved word used as a parameter name", -1)
    return name


def _located(text: str, raw: int, err: CypherSyntaxError) -> CypherSyntaxError:
    """``err`` with the offset of raw token number ``raw`` (comments included)."""
    offset = len(text)
    for number, match in enumerate(_MASTER.finditer(text)):
        if number == raw:
            offset = match.start(1 if match.group(1) is not None else 2)
            break
    if err.message:
        return CypherSyntaxError(err.message, offset)
    return _diagnose(text, offset)


def _diagnose(text: str, pos: int) -> CypherSyntaxError:
    """Explain why no token the engine accepts starts at ``pos``."""
    ch = text[pos]
    head = text[pos : pos + 2]
    if ch in "'\"":
        return _literal_problem(text, pos, "unterminated string literal or invalid escape")
    if ch == "`":
        return _literal_problem(text, pos, "unterminated quoted name")
    if head == "/*":
        # A "*/" a reader would stop at that the engine reads past ("**/").
        naive_end = text.find("*/", pos + 2) >= 0
        what = "ambiguous block comment end" if naive_end else "unterminated block comment"
        return _literal_problem(text, pos, what)
    if head == "//":
        return _literal_problem(text, pos, "line comment ended by a lone carriage return")
    if head == "$`":
        return CypherSyntaxError("quoted parameter names are not supported", pos)
    if ch == "$":
        return CypherSyntaxError("invalid parameter", pos)
    return CypherSyntaxError(_character_problem(ch), pos)


def _literal_problem(text: str, pos: int, otherwise: str) -> CypherSyntaxError:
    """Blame the first refused character after ``pos``, else ``otherwise``."""
    bad = _BAD_CHAR.search(text, pos)
    if bad is not None:
        return CypherSyntaxError(_character_problem(bad.group()), bad.start())
    return CypherSyntaxError(otherwise, pos)


def _character_problem(ch: str) -> str:
    code = ord(ch)
    if ch == "\r":
        return "carriage return outside CRLF"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"control character U+{code:04X} not allowed"
    if ch in _INVISIBLE:
        return f"invisible character U+{code:04X} not allowed"
    if code > 0x7F:
        return (
            f"character U+{code:04X} not allowed outside strings, comments "
            "and backtick-quoted names"
        )
    return f"unexpected character {ch!r}"


def is_word(key: str) -> bool:
    """Whether ``key`` is an unquoted word (a keyword or a plain name)."""
    return key[:1] in _WORD_START


def _kind(key: str) -> Kind:
    if is_word(key):
        return Kind.NAME
    return {
        "": Kind.EOF,
        "'": Kind.STRING,
        "#": Kind.NUMBER,
        "#.": Kind.NUMBER,
        "$": Kind.PARAM,
        "`": Kind.QNAME,
    }.get(key, Kind.PUNCT)


def _source(text: str, offsets: list[int], index: int) -> str:
    """The source text of token ``index``: up to the next token, trimmed."""
    end = offsets[index + 1] if index + 1 < len(offsets) else len(text)
    match = _MASTER.match(text, offsets[index])
    return match.group(1) if match else text[offsets[index] : end]
