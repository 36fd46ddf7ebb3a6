"""``google.api.http`` path templates: parsed once, matched against raw paths.

The grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    Verb     = ":" LITERAL ;

``{graph_id}`` is ``{graph_id=*}``: one path segment. ``**`` matches the
rest of the path. A template compiles to one anchored regular expression
over the *raw* (still percent-encoded) path, so an encoded ``/`` (``%2F``)
inside an id stays inside that id instead of splitting the path.

Security: captured values are percent-decoded strictly (invalid UTF-8 is a
mismatch, not a guess); a single-segment value can never contain ``/``
unless the client encoded it, and then it is only data for the request
message, which the server validates (ids are UUIDs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_ENCODED_SLASH = re.compile(r"%2[Ff]")


class TemplateError(ValueError):
    """A path template of the contract does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A compiled path template.

    ``variables`` are the field paths bound by the template, in order;
    ``openapi_path`` is the template in OpenAPI's syntax (``{graph_id}``).
    """

    source: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]
    multi_segment: frozenset[str]
    openapi_path: str

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded variable values when ``raw_path`` matches, else None."""
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, field_path in enumerate(self.variables):
            raw = found.group(f"v{index}")
            decoded = _decode(raw, keep_slashes=field_path in self.multi_segment)
            if decoded is None:
                return None
            values[field_path] = decoded
        return values


def _decode(raw: str, *, keep_slashes: bool) -> str | None:
    """Percent-decode; multi-segment values keep ``%2F`` as it is (the spec)."""
    try:
        if keep_slashes:
            parts = _ENCODED_SLASH.split(raw)
            slashes = _ENCODED_SLASH.findall(raw)
            decoded = [unquote_to_bytes(p).decode("utf-8", "strict") for p in parts]
            out = decoded[0]
            for slash, part in zip(slashes, decoded[1:], strict=True):
                out += slash + part
            return out
        return unquote_to_bytes(raw).decode("utf-8", "strict")
    except UnicodeDecodeError:
        return None


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside braces."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError("unbalanced '}'")
        elif char == sep and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    if depth:
        raise TemplateError("unbalanced '{'")
    parts.append(text[start:])
    return parts


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return r"[^/]+"
    if segment == "**":
        return r"(?:[^/]+(?:/[^/]+)*)?"
    if not segment or any(c in segment for c in "{}*"):
        raise TemplateError(f"bad segment {segment!r}")
    return re.escape(segment)


def parse_template(source: str) -> PathTemplate:
    """Compile one ``google.api.http`` path template; raises :class:`TemplateError`."""
    if not source.startswith("/"):
        raise TemplateError(f"{source!r} must start with '/'")
    body, verb = source[1:], ""
    last = _split_top(body, "/")[-1]
    pieces = _split_top(last, ":")
    if len(pieces) > 2:
        raise TemplateError(f"{source!r} has more than one verb")
    if len(pieces) == 2:
        verb = pieces[1]
        body = body[: len(body) - len(verb) - 1]
        if not verb or "/" in verb:
            raise TemplateError(f"{source!r} has an empty verb")
    regex: list[str] = []
    openapi: list[str] = []
    variables: list[str] = []
    multi: set[str] = set()
    for segment in _split_top(body, "/"):
        if segment.startswith("{") and segment.endswith("}"):
            name, _, inner = segment[1:-1].partition("=")
            if not _IDENT.fullmatch(name):
                raise TemplateError(f"bad variable {segment!r}")
            inner_segments = _split_top(inner or "*", "/")
            inner_regex = "/".join(_segment_regex(s) for s in inner_segments)
            if inner_segments != ["*"]:
                multi.add(name)
            regex.append(f"(?P<v{len(variables)}>{inner_regex})")
            openapi.append("{" + name + "}")
            variables.append(name)
        else:
            regex.append(_segment_regex(segment))
            openapi.append(segment)
    verb_regex = ":" + re.escape(verb) if verb else ""
    verb_text = ":" + verb if verb else ""
    return PathTemplate(
        source=source,
        pattern=re.compile("/" + "/".join(regex) + verb_regex),
        variables=tuple(variables),
        multi_segment=frozenset(multi),
        openapi_path="/" + "/".join(openapi) + verb_text,
    )
