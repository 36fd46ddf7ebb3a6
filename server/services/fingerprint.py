"""Device fingerprints for browser sessions (C4).

A browser token carries a SHA-256 of the stable client hints: the
``User-Agent`` with version numbers removed, ``Sec-CH-UA`` without its
version parameters, ``Sec-CH-UA-Platform`` and ``Sec-CH-UA-Mobile``. A browser
update changes versions only, so the fingerprint survives it; another browser
or platform changes it. The IP address is deliberately not part of it (VPNs,
mobile networks and load balancers change it all the time).

Security: hint values are attacker-controlled text; they are only hashed,
never logged or echoed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

_VERSION = re.compile(r"\d+(?:[._]\d+)*")
_UA_BRAND_VERSION = re.compile(r';\s*v="[^"]*"')
_HINTS = ("user-agent", "sec-ch-ua", "sec-ch-ua-platform", "sec-ch-ua-mobile")
_MAX_HINT = 512


def _stable_user_agent(user_agent: str) -> str:
    return _VERSION.sub("", user_agent[:_MAX_HINT]).strip()


def _stable_brands(sec_ch_ua: str) -> str:
    brands = _UA_BRAND_VERSION.sub("", sec_ch_ua[:_MAX_HINT])
    # Brand order is randomised by some browsers ("GREASE"): sort the list.
    return ",".join(sorted(part.strip() for part in brands.split(",") if part.strip()))


def is_browser(hints: Mapping[str, str]) -> bool:
    """True when the request comes from a web browser (it sends UA client hints
    or a ``Mozilla/`` user agent); only browser sessions are fingerprinted."""
    return bool(hints.get("sec-ch-ua")) or hints.get("user-agent", "").startswith("Mozilla/")


def fingerprint(hints: Mapping[str, str]) -> str:
    """The SHA-256 (hex) of the stable part of the client hints."""
    parts = [
        _stable_user_agent(hints.get("user-agent", "")),
        _stable_brands(hints.get("sec-ch-ua", "")),
        hints.get("sec-ch-ua-platform", "")[:64].strip(),
        hints.get("sec-ch-ua-mobile", "")[:8].strip(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def hints_from_metadata(metadata: object) -> dict[str, str]:
    """The fingerprint hints of a call's invocation metadata.

    gRPC replaces a call's ``user-agent`` with the channel's own, so the REST
    sidecar forwards the browser's as ``x-forwarded-user-agent``, which wins.
    Trusting it is safe here: a fingerprint only narrows where a token works;
    whoever holds the token can present any hints anyway.
    """
    found: dict[str, str] = {}
    forwarded: str | None = None
    for item in metadata or ():  # type: ignore[attr-defined]
        key, value = item
        if not isinstance(value, str):
            continue
        if key in _HINTS:
            found[key] = value
        elif key == "x-forwarded-user-agent":
            forwarded = value
    if forwarded is not None:
        found["user-agent"] = forwarded
    return found
