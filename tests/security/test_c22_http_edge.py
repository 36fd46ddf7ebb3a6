"""C22 (HTTP edge), C18 (the sidecar's admission control) and C4 through the sidecar.

Every test talks HTTP to a sidecar on a real loopback socket (uvicorn), in
front of the session's graphgate server or of a small fake upstream; the
chunked-body test uses httpx's ASGI transport because a server that refuses
a body mid-upload resets the connection under a real client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio

from graphgate.clients.gateway import (
    AdmissionThresholds,
    GatewayOptions,
    RunningGateway,
    create_app,
    start_gateway,
)
from graphgate.clients.gateway.headers import content_security_policy
from graphgate.server.app import GraphgateServer
from graphgate.v1 import auth_pb2
from tests.support import CHROME_LINUX, new_email, strong_password

pytestmark = pytest.mark.security

CONSOLE = "https://console.example.com"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
LIMIT = 8 * 1024 * 1024


@asynccontextmanager
async def sidecar(upstream: str, **options: Any) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(GatewayOptions(upstream=upstream, **options), "127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
async def gateway(server: GraphgateServer) -> AsyncIterator[RunningGateway]:
    async with sidecar(f"127.0.0.1:{server.port}", cors_origins=(CONSOLE,)) as running:
        yield running


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        yield client


def _error(reply: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()
    assert set(body) == {"code", "message", "details"}
    return body


def _reason(body: dict[str, Any]) -> str:
    return next(str(d["reason"]) for d in body["details"] if "reason" in d)


async def test_c22_security_headers_on_console_api_and_errors(http: httpx.AsyncClient) -> None:
    """C22: nosniff, frame denial, no referrer and the strict CSP everywhere;
    no-store on API (auth) responses; no HSTS over plain HTTP."""
    console = await http.get("/")
    assert console.status_code == 200
    assert console.headers["content-type"].startswith("text/html")
    assert "<script" in console.text
    assert "console.js" in console.text
    api = await http.post("/v1/auth/login", json={"email": new_email(), "password": "x" * 12})
    missing = await http.get("/v1/no/such/route")
    for reply in (console, api, missing):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["content-security-policy"] == CSP
        assert "strict-transport-security" not in reply.headers
        assert "server" not in reply.headers
    assert api.status_code == 401
    assert api.headers["cache-control"] == "no-store"
    assert missing.headers["cache-control"] == "no-store"


async def test_c22_console_has_no_inline_script_or_style(http: httpx.AsyncClient) -> None:
    """C22: the console works under its CSP: no inline script, handler or style."""
    page = (await http.get("/")).text.lower()
    assert "<style" not in page
    assert "style=" not in page
    assert "onclick" not in page
    for tag in page.split("<script")[1:]:
        assert "src=" in tag.split(">", 1)[0]
        assert tag.split(">", 1)[1].startswith("</script>")
    script = await http.get("/console.js")
    assert script.status_code == 200
    assert ".innerHTML" not in script.text
    assert "insertAdjacentHTML" not in script.text


async def test_c22_hsts_under_tls_and_upload_origin_in_csp() -> None:
    """C22: HSTS when served over TLS; the presigned-upload origin is the only
    addition to connect-src."""
    store = "https://uploads.example.com"
    app = create_app(GatewayOptions(upstream="127.0.0.1:9", tls=True, upload_origins=(store,)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://sidecar.test") as client:
        reply = await client.get("/healthz")
    assert reply.headers["strict-transport-security"].startswith("max-age=63072000")
    assert reply.headers["content-security-policy"] == content_security_policy((store,))
    assert f"connect-src 'self' {store};" in reply.headers["content-security-policy"]


async def test_c22_cors_only_for_listed_origins(http: httpx.AsyncClient) -> None:
    """C22: a listed origin gets its own origin back with credentials and the
    rate-limit headers exposed; another origin gets no CORS header at all."""
    listed = await http.get("/v1/auth/password-policy", headers={"Origin": CONSOLE})
    assert listed.headers["access-control-allow-origin"] == CONSOLE
    assert listed.headers["access-control-allow-credentials"] == "true"
    assert "X-RateLimit-Remaining" in listed.headers["access-control-expose-headers"]
    assert "Origin" in listed.headers["vary"]
    other = await http.get("/v1/auth/password-policy", headers={"Origin": "https://evil.test"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-credentials" not in other.headers


async def test_c22_cors_preflight(http: httpx.AsyncClient) -> None:
    """C22: preflights are answered for listed origins, methods and headers only."""
    asked = {
        "Origin": CONSOLE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    ok = await http.options("/v1/graphs", headers=asked)
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == CONSOLE
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"]
    for refused in (
        {**asked, "Origin": "https://evil.test"},
        {**asked, "Access-Control-Request-Method": "TRACE"},
        {**asked, "Access-Control-Request-Headers": "x-smuggled"},
    ):
        reply = await http.options("/v1/graphs", headers=refused)
        assert reply.status_code == 403
        assert "access-control-allow-origin" not in reply.headers
        assert _reason(_error(reply)) == "CORS_REFUSED"


async def _raw_request(gateway: RunningGateway, head: str) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(head.encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    body = rest.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), json.loads(body)


async def test_c22_declared_body_over_8mb_is_refused_before_reading(
    gateway: RunningGateway,
) -> None:
    """C22: Content-Length above 8 MB gets 413 without a byte of it being read."""
    status, body = await _raw_request(
        gateway,
        "POST /v1/auth/login HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n"
        f"Content-Length: {LIMIT + 1}\r\n\r\n",
    )
    assert status == 413
    assert body["code"] == "INVALID_ARGUMENT"
    assert _reason(body) == "BODY_TOO_LARGE"


async def test_c22_body_of_exactly_8mb_is_read(http: httpx.AsyncClient) -> None:
    """C22: the limit is 8 MB inclusive: such a body reaches binding (bad JSON here)."""
    body = b" " * (LIMIT - 1) + b"x"
    headers = {"Content-Type": "application/json"}
    reply = await http.post("/v1/auth/login", content=body, headers=headers)
    assert reply.status_code == 400
    assert _reason(_error(reply)) == "INVALID_REQUEST"


async def test_c22_chunked_body_over_8mb_is_cut_off() -> None:
    """C22: a body without Content-Length is counted as it arrives and refused
    the moment it passes 8 MB."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(9):
            yield b" " * (1024 * 1024)

    app = create_app(GatewayOptions(upstream="127.0.0.1:9"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sidecar.test") as client:
        reply = await client.post("/v1/auth/login", content=chunks())
    assert reply.status_code == 413
    assert _reason(_error(reply)) == "BODY_TOO_LARGE"


async def test_c22_headers_over_8kb_are_431(http: httpx.AsyncClient) -> None:
    """C22: a request head over 8 KB gets 431 with the JSON error shape (a head
    still arriving past twice that is cut off by the HTTP parser: 400)."""
    reply = await http.get("/v1/auth/password-policy", headers={"X-Padding": "p" * 9000})
    assert reply.status_code == 431
    assert _reason(_error(reply)) == "HEADERS_TOO_LARGE"
    fine = await http.get("/v1/auth/password-policy", headers={"X-Padding": "p" * 7000})
    assert fine.status_code == 200
    huge = await http.get("/v1/auth/password-policy", headers={"X-Padding": "p" * 40000})
    assert huge.status_code in (400, 431)


async def test_c22_hostile_header_values_do_not_break_calls(http: httpx.AsyncClient) -> None:
    """Header text that gRPC metadata cannot carry is dropped, not a 500."""
    reply = await http.get(
        "/v1/auth/password-policy",
        headers=[
            (b"User-Agent", "Mozilla/5.0 \u00e9\u00e8".encode("latin-1")),
            (b"X-Forwarded-For", "not-an-ip, \u00ff".encode("latin-1")),
            (b"X-Request-Id", b"bad id\twith tab"),
        ],
    )
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] != "bad id\twith tab"


async def test_c18_c22_admission_sheds_with_retry_after_and_spares_health() -> None:
    """C18 in the sidecar: past the in-flight threshold new requests get 503
    with Retry-After (reason OVERLOADED) until load falls below the resume
    threshold; /healthz is never shed."""
    release, both_arrived = asyncio.Event(), asyncio.Event()
    arrived = 0

    async def stalled(request: Any, context: Any) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_arrived.set()
        await release.wait()
        return auth_pb2.GetCurrentUserResponse()

    handler = grpc.unary_unary_rpc_method_handler(
        stalled,
        request_deserializer=auth_pb2.GetCurrentUserRequest.FromString,
        response_serializer=auth_pb2.GetCurrentUserResponse.SerializeToString,
    )

    class Generic(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Any:
            return handler

    fake = aio.server()
    fake.add_generic_rpc_handlers((Generic(),))
    port = fake.add_insecure_port("127.0.0.1:0")
    await fake.start()
    thresholds = AdmissionThresholds(shed_at=2, resume_below=1, retry_after_seconds=3)
    try:
        async with sidecar(f"127.0.0.1:{port}", admission=thresholds) as running:
            controller = running.app.state.admission
            async with httpx.AsyncClient(base_url=running.url, timeout=20) as client:
                held = [asyncio.create_task(client.get("/v1/auth/me")) for _ in range(2)]
                await asyncio.wait_for(both_arrived.wait(), 10)
                assert controller.in_flight == 2
                shed = await client.get("/v1/auth/me")
                assert shed.status_code == 503
                assert shed.headers["retry-after"] == "3"
                body = _error(shed)
                assert body["code"] == "UNAVAILABLE"
                assert _reason(body) == "OVERLOADED"
                assert any(d.get("retryDelay") == "3s" for d in body["details"])
                assert (await client.get("/healthz")).status_code == 200
                release.set()
                assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
                assert (await client.get("/v1/auth/me")).status_code == 200
                assert controller.shed_total == 1
    finally:
        await fake.stop(0)


async def test_c4_browser_token_is_bound_to_its_browser_through_the_sidecar(
    http: httpx.AsyncClient,
) -> None:
    """C4 through the sidecar: the browser's client hints travel as metadata,
    so a token issued to Chrome on Linux is refused (401) when replayed with
    other hints, and still works after a browser version update."""
    chrome = {name.title(): value for name, value in CHROME_LINUX.items()}
    body = {"email": new_email(), "password": strong_password(), "name": "Browser User"}
    registered = await http.post("/v1/auth/register", json=body, headers=chrome)
    assert registered.status_code == 200, registered.text
    auth = {"Authorization": "Bearer " + registered.json()["session"]["accessToken"]}

    assert (await http.get("/v1/auth/me", headers={**auth, **chrome})).status_code == 200
    updated = {**chrome, "Sec-Ch-Ua": chrome["Sec-Ch-Ua"].replace("124", "125")}
    assert (await http.get("/v1/auth/me", headers={**auth, **updated})).status_code == 200

    windows = {**chrome, "Sec-Ch-Ua-Platform": '"Windows"'}
    firefox = {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"
    }
    for other in (windows, firefox):
        replay = await http.get("/v1/auth/me", headers={**auth, **other})
        assert replay.status_code == 401
        assert _error(replay)["code"] == "UNAUTHENTICATED"
        assert _reason(_error(replay)) == "FINGERPRINT_MISMATCH"
