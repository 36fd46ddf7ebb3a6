"""Security headers on every response (C22).

Every response gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options:
DENY``, ``Referrer-Policy: no-referrer``, ``Cross-Origin-Opener-Policy:
same-origin`` and the console's Content-Security-Policy (no inline script or
style, nothing framed, connections to this origin and the upload store
only); ``Strict-Transport-Security`` when the sidecar is reached over TLS;
``Cache-Control: no-store`` on every API response, so tokens, keys and user
data (auth responses included) never sit in a shared or browser cache.
A header the app already set is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BASE_CSP = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)
_API_PREFIX = "/v1/"


def content_security_policy(upload_origins: Sequence[str] = ()) -> str:
    """The console's CSP; ``upload_origins`` join ``connect-src`` (presigned uploads)."""
    parts = list(_BASE_CSP)
    if upload_origins:
        parts[4] = " ".join(("connect-src 'self'", *upload_origins))
    return "; ".join(parts)


class SecurityHeadersMiddleware:
    """Adds the C22 headers to every HTTP response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tls: bool = False,
        hsts_max_age: int = 63_072_000,
        upload_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        fixed = {
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "no-referrer",
            "cross-origin-opener-policy": "same-origin",
            "content-security-policy": content_security_policy(upload_origins),
        }
        if tls:
            fixed["strict-transport-security"] = f"max-age={hsts_max_age}; includeSubDomains"
        # Raw byte pairs, appended straight to the ASGI message: this runs on
        # every response, so no header objects are built for it.
        self._fixed = tuple((k.encode(), v.encode()) for k, v in fixed.items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith(_API_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in self._fixed if pair[0] not in present)
                if api:
                    headers = [pair for pair in headers if pair[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
