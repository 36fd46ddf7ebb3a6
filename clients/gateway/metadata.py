"""HTTP headers ↔ gRPC metadata: an allow-list in each direction.

Inbound, only credentials (``Authorization``, ``X-API-Key``), the browser
hints the device fingerprint needs (C4: ``User-Agent``, ``Sec-CH-UA``,
``Sec-CH-UA-Platform``, ``Sec-CH-UA-Mobile``), ``X-Request-Id`` and
``X-Forwarded-For`` travel. Outbound, only the request id and the rate-limit
figures become headers (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``,
``Retry-After``), from initial metadata on success and from trailing
metadata on errors.

The client's address goes upstream as ``x-forwarded-for``: the incoming
header (written by proxies in front of the sidecar, or by the client) with
the connection's peer address appended, as every proxy does. The gRPC server
walks that list from the right and believes it only from its
``TRUSTED_PROXIES``, so the sidecar's address must be listed there, and a
client's own ``X-Forwarded-For`` text is never believed by itself.

gRPC replaces a call's ``user-agent`` with the channel's own, so the
browser's ``User-Agent`` also travels as ``x-forwarded-user-agent``.

Security: header values are attacker-controlled. Values that are not
printable ASCII, or longer than gRPC metadata should carry, are dropped
rather than passed on (grpc would otherwise fail the call); outbound values
are checked against the shape they must have (digits, a request id).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
_DIGITS = re.compile(r"[0-9]{1,12}")
_MAX_VALUE = 4096

#: Request headers forwarded as metadata under the same (lower-case) name.
FORWARDED_HEADERS = (
    "authorization",
    "x-api-key",
    "user-agent",
    "sec-ch-ua",
    "sec-ch-ua-platform",
    "sec-ch-ua-mobile",
)
FORWARDED_USER_AGENT = "x-forwarded-user-agent"

#: Response metadata → response header, with the shape the value must have.
_OUTBOUND = {
    "x-request-id": ("X-Request-Id", _REQUEST_ID),
    "x-ratelimit-limit": ("X-RateLimit-Limit", _DIGITS),
    "x-ratelimit-remaining": ("X-RateLimit-Remaining", _DIGITS),
    "x-ratelimit-reset": ("X-RateLimit-Reset", _DIGITS),
    "retry-after": ("Retry-After", _DIGITS),
}

#: Credentials: a request carrying one of these twice is refused, never guessed at.
_SINGLE = frozenset({"authorization", "x-api-key"})

#: Headers a browser script may read on a cross-origin response.
EXPOSED_HEADERS = tuple(name for name, _ in _OUTBOUND.values())


class AmbiguousCredentials(ValueError):
    """A credential header appears more than once (400): which one counts would
    depend on who parses it, which is how smuggling between proxies starts."""

    def __init__(self, header: str) -> None:
        super().__init__(f"{header} must be sent once")
        self.header = header


def _usable(value: str) -> bool:
    return len(value) <= _MAX_VALUE and _PRINTABLE.fullmatch(value) is not None


def request_id(headers: Mapping[str, str]) -> str:
    """The client's ``X-Request-Id`` when well formed, else a new one.

    Generated here rather than upstream so sidecar and server logs share it.
    """
    supplied = headers.get("x-request-id", "")
    return supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex


def inbound_metadata(
    headers: Iterable[tuple[str, str]], peer: str | None, request_id_value: str
) -> list[tuple[str, str]]:
    """The metadata for an upstream call made on behalf of this HTTP request.

    ``headers`` are (lower-case name, value) pairs in arrival order; ``peer``
    is the address of the connection's other end (None when unknown). Raises
    :class:`AmbiguousCredentials` when a credential header is repeated.
    """
    metadata: list[tuple[str, str]] = [("x-request-id", request_id_value)]
    forwarded: list[str] = []
    seen: set[str] = set()
    for name, value in headers:
        if name in _SINGLE:
            if name in seen:
                raise AmbiguousCredentials(name)
            seen.add(name)
        value = value.strip()
        if not _usable(value):
            continue
        if name in FORWARDED_HEADERS:
            metadata.append((name, value))
            if name == "user-agent":
                metadata.append((FORWARDED_USER_AGENT, value))
        elif name == "x-forwarded-for" and value:
            forwarded.append(value)
    if peer:
        forwarded.append(peer)
    if forwarded:
        joined = ", ".join(forwarded)
        if _usable(joined):
            metadata.append(("x-forwarded-for", joined))
        elif peer:
            metadata.append(("x-forwarded-for", peer))  # never lose the hop we saw
    return metadata


def outbound_headers(*sources: Any) -> dict[str, str]:
    """Response headers from initial and/or trailing metadata (later sources win)."""
    headers: dict[str, str] = {}
    for metadata in sources:
        for item in metadata or ():
            key, value = item
            spec = _OUTBOUND.get(key)
            if spec is None or not isinstance(value, str):
                continue
            name, shape = spec
            if shape.fullmatch(value):
                headers[name] = value
    return headers
