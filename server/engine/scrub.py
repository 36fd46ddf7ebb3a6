"""Remove internals from engine messages before a client sees them (CONTROLS.md C16).

Users need the engine's syntax and binder messages to fix their queries, but
those messages quote paths, the query text and sometimes file contents. The
:func:`scrub` pass replaces what could reveal the server (paths, URLs, hosts,
addresses, e-mails, SQL, stack-trace lines, secret-looking tokens, ids of
other graphs) with placeholders such as ``<path>``, keeps the rest, and caps
the length. Patterns are ordered: URLs before paths and hosts, specific
secrets before generic long tokens.

Security: the input is untrusted (it may echo user text) and arbitrarily long;
it is cut to :data:`MAX_INPUT_CHARS` before any pattern runs, and every
pattern is linear (no nested quantifiers), so scrubbing costs O(n).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

#: Longest message examined; the rest is dropped before matching.
MAX_INPUT_CHARS = 4000
#: Longest message returned.
MAX_OUTPUT_CHARS = 1000

# One DNS label.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Top-level domains that are hosts even after one label ("db.internal"); the
# others need two labels, so property access such as ``n.info`` survives.
_STRONG_TLDS = "com|net|org|io|internal|localdomain|amazonaws"
_HOST_TLDS = (
    "com|net|org|io|dev|app|cloud|internal|local|localdomain|lan|corp|intra|svc|"
    "cluster|aws|gov|edu|mil|info|biz|co|uk|de|fr|nl|eu|us|ca|au|jp|cn|ru|in|br|me|ai"
)

_HOST = re.compile(
    rf"(?i)(?:{_LABEL}\.){{2,}}(?:{_HOST_TLDS})(?::\d+)?|{_LABEL}\.(?:{_STRONG_TLDS})(?::\d+)?"
)


def _host(match: re.Match[str]) -> str:
    # Whole-token check: a regex search over the text backtracks quadratically
    # on long dotted runs; one anchored match per token stays linear.
    return "<host>" if _HOST.fullmatch(match.group(0)) else match.group(0)


# (name, pattern, replacement); the names document intent and make tests readable.
_RULES: tuple[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Stack traces first: whole lines go, including the paths inside them.
    ("python_traceback_header", re.compile(r"Traceback \(most recent call last\):"), ""),
    ("python_frame", re.compile(r'File "[^"\n]*", line \d+(?:, in [^\n]*)?'), "<frame>"),
    ("native_frame", re.compile(r"#\d+\s+0x[0-9a-fA-F]+ in [^\n]*"), "<frame>"),
    (
        "source_location",
        re.compile(r"(?<![\w./-])[\w./-]{1,200}\.(?:cpp|cc|hpp|h|c|py|pyx|go|rs|java):\d+\b"),
        "<src>",
    ),
    # Credentials and keys before anything that could split them.
    (
        "pem_block",
        re.compile(r"-----BEGIN [A-Z ]+-----[\s\S]*?(?:-----END [A-Z ]+-----|\Z)"),
        "<secret>",
    ),
    ("jwt", re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*"), "<secret>"),
    ("bearer", re.compile(r"(?i)\b(bearer|basic)\s+[\w~+/.=-]{8,}"), r"\1 <secret>"),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), "<secret>"),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "<secret>"),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "<secret>"),
    ("graphgate_key", re.compile(r"\bgg_[A-Za-z0-9_]*[0-9a-f]{32,}\b"), "<secret>"),
    (
        "secret_assignment",
        re.compile(
            r"(?i)(?<![\w-])([\w-]{0,40}(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
            r"credential|private[_-]?key|session)[\w-]{0,40})\s*([=:])\s*"
            r"(?:'[^']*'|\"[^\"]*\"|[^\s,;)}]+)"
        ),
        r"\1\2<secret>",
    ),
    # Locations: URLs (any scheme, DSNs with user:password@ included), then paths.
    ("url", re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,15}://[^\s'\"<>)]*"), "<url>"),
    ("unix_socket", re.compile(r"(?i)\bunix(?:-abstract)?:[^\s'\"<>)]+"), "<url>"),
    ("windows_path", re.compile(r"(?i)\b[a-z]:\\[^\s'\"<>]*"), "<path>"),
    ("unc_path", re.compile(r"\\\\[\w.$-]+\\[^\s'\"<>]*"), "<path>"),
    ("home_path", re.compile(r"(?<![\w)\]])~[\w.-]*/[^\s'\"<>),;]*"), "<path>"),
    ("relative_path", re.compile(r"(?<![\w)\]])\.\.?/[^\s'\"<>),;]+"), "<path>"),
    (
        "posix_path_known_root",
        re.compile(
            r"(?<![\w)\]./])/(?:etc|tmp|var|home|root|usr|opt|srv|mnt|proc|sys|dev|run|data|"
            r"work|app|lib|bin|sbin|media|private|Users|Volumes)\b[^\s'\"<>),;]*"
        ),
        "<path>",
    ),
    ("posix_path", re.compile(r"(?<![\w)\]./])/[\w.@+-]+(?:/[\w.@+-]*)+"), "<path>"),
    (
        "email",
        re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+"),
        "<email>",
    ),
    # Hosts and addresses.
    (
        "ipv4",
        re.compile(
            r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?::\d{1,5})?\b"
        ),
        "<ip>",
    ),
    (
        "ipv6",
        re.compile(
            r"(?i)(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|"
            r"(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?)"
            r"(?![\w:])"
            r"|\[(?=[^\]]{0,60}:[^\]]{0,60}:)[0-9a-f:.]{2,45}(?:%\w+)?\](?::\d{1,5})?"
        ),
        "<ip>",
    ),
    ("hostname", re.compile(r"(?<![\w.-])[A-Za-z0-9][A-Za-z0-9.-]{2,253}(?::\d{1,5})?"), _host),
    ("localhost", re.compile(r"(?i)\blocalhost(?::\d{1,5})?\b"), "<host>"),
    # Identifiers of this deployment: graph ids, memory addresses.
    (
        "uuid",
        re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        "<id>",
    ),
    ("memory_address", re.compile(r"\b0x[0-9a-fA-F]{6,16}\b"), "<addr>"),
    # SQL that could come from a store or driver message.
    (
        "sql",
        re.compile(
            r"(?i)\b(?:SELECT\s[^;\n]{0,400}?\bFROM\b|INSERT\s+INTO\b|UPDATE\s+[\w.\"]+\s+SET\b|"
            r"DELETE\s+FROM\b|ALTER\s+ROLE\b|GRANT\s[^;\n]{0,200}?\bTO\b)[^;\n]*"
        ),
        "<sql>",
    ),
    # Generic secrets last: long hex or base64 runs that survived the specific rules.
    ("long_hex", re.compile(r"\b[0-9a-fA-F]{32,}\b"), "<secret>"),
    (
        "long_base64",
        # Mixed case and a digit: long identifiers in user queries are not secrets.
        re.compile(
            r"(?<![\w/+-])(?=[\w/+-]{0,200}\d)(?=[\w/+-]{0,200}[a-z])(?=[\w/+-]{0,200}[A-Z])"
            r"[A-Za-z0-9+/_-]{40,}={0,2}(?![\w/+-])"
        ),
        "<secret>",
    ),
)

#: How many patterns :func:`scrub` applies (C16 asks for at least 20).
PATTERN_COUNT = len(_RULES)

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def rule_names() -> tuple[str, ...]:
    """The names of the rules, in the order they run (for tests and docs)."""
    return tuple(name for name, _, _ in _RULES)


def scrub(text: str, *, literals: Iterable[str] = ()) -> str:
    """Return ``text`` with internals replaced by placeholders.

    ``literals`` are exact strings to hide first (the data directory, the
    socket directory): they are known to be internal whatever they look like.
    Newlines survive (parser messages point at a column on the next line);
    other control characters become spaces. Never raises; costs O(len(text)).
    """
    out = text[:MAX_INPUT_CHARS]
    for literal in sorted((s for s in literals if s), key=len, reverse=True):
        out = out.replace(literal, "<path>")
    for _, pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    out = _CONTROL.sub(" ", out).strip()
    if len(out) > MAX_OUTPUT_CHARS:
        out = out[: MAX_OUTPUT_CHARS - 1] + "…"
    return out
