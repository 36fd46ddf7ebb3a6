"""The REST sidecar end to end: HTTP on a real socket → sidecar → real gRPC server.

The sidecar runs under uvicorn on a free loopback port in front of the
session's graphgate server (the production chain). Streaming and a few
status mappings are also checked against small fake upstreams: real grpc.aio
servers whose handlers answer what a test needs, so the NDJSON and SSE
framing is covered whether or not GraphService has landed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio

from graphgate.clients.gateway import GatewayOptions, RunningGateway, start_gateway
from graphgate.clients.gateway.bindings import contract_bindings
from graphgate.server.app import GraphgateServer
from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings
from graphgate.v1 import auth_pb2, graph_pb2, policy_pb2
from tests.conftest import custom_server
from tests.support import new_email, strong_password

STREAM = "/graphgate.v1.GraphService/StreamQuery"
ME = "/graphgate.v1.AuthService/GetCurrentUser"


@asynccontextmanager
async def sidecar(upstream: str, **options: Any) -> AsyncIterator[RunningGateway]:
    """A sidecar on a free loopback port in front of ``upstream``."""
    running = await start_gateway(GatewayOptions(upstream=upstream, **options), "127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
async def gateway(server: GraphgateServer) -> AsyncIterator[RunningGateway]:
    async with sidecar(f"127.0.0.1:{server.port}") as running:
        yield running


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        yield client


@asynccontextmanager
async def fake_upstream(handlers: dict[str, Any]) -> AsyncIterator[str]:
    """A grpc.aio server answering ``handlers`` by full method; others UNIMPLEMENTED."""

    class Generic(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Any:
            return handlers.get(details.method)  # type: ignore[attr-defined]

    fake = aio.server()
    fake.add_generic_rpc_handlers((Generic(),))
    port = fake.add_insecure_port("127.0.0.1:0")
    await fake.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await fake.stop(0)


def stream_handler(behaviour: Callable[..., Any]) -> Any:
    return grpc.unary_stream_rpc_method_handler(
        behaviour,
        request_deserializer=graph_pb2.StreamQueryRequest.FromString,
        response_serializer=graph_pb2.StreamQueryResponse.SerializeToString,
    )


async def register(http: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    body = {"email": new_email(), "password": strong_password(), "name": "REST User"}
    reply = await http.post("/v1/auth/register", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    return {**reply.json(), "password": body["password"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()
    assert set(body) == {"code", "message", "details"}, body
    return body


def reason_of(body: dict[str, Any]) -> str:
    infos = [d for d in body.get("details", []) if d["@type"].endswith("google.rpc.ErrorInfo")]
    return str(infos[0]["reason"]) if infos else ""


# --- the auth flow ------------------------------------------------------------


async def test_auth_flow_register_login_me_refresh_logout(http: httpx.AsyncClient) -> None:
    account = await register(http)
    session, user = account["session"], account["user"]
    assert isinstance(session["expiresInSeconds"], str)  # int64 travels as a string
    assert int(session["expiresInSeconds"]) > 0
    assert uuid.UUID(user["userId"])

    login = await http.post(
        "/v1/auth/login", json={"email": user["email"], "password": account["password"]}
    )
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    token = login.json()["session"]["accessToken"]

    me = await http.get("/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == user["email"]
    assert me.headers["x-ratelimit-limit"].isdigit()
    assert me.headers["x-ratelimit-remaining"].isdigit()
    assert len(me.headers["x-request-id"]) >= 8

    refreshed = await http.post("/v1/auth/refresh", headers=bearer(token))
    assert refreshed.status_code == 200, refreshed.text
    new_token = refreshed.json()["session"]["accessToken"]
    assert new_token != token
    assert (await http.get("/v1/auth/me", headers=bearer(new_token))).status_code == 200

    out = await http.post("/v1/auth/logout", headers=bearer(new_token), json={})
    assert out.status_code == 200
    assert out.json() == {}
    after = await http.get("/v1/auth/me", headers=bearer(new_token))
    assert after.status_code == 401
    assert error_of(after)["code"] == "UNAUTHENTICATED"


async def test_request_id_travels_both_ways(http: httpx.AsyncClient) -> None:
    rid = "rest-" + secrets.token_hex(8)
    reply = await http.get("/v1/auth/password-policy", headers={"X-Request-Id": rid})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == rid
    assert reply.json()["policy"]["minLength"] >= 12


# --- errors, code by code -----------------------------------------------------


async def test_401_without_credentials(http: httpx.AsyncClient) -> None:
    reply = await http.get("/v1/auth/me")
    assert reply.status_code == 401
    body = error_of(reply)
    assert body["code"] == "UNAUTHENTICATED"
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["domain"] == "graphgate"


async def test_403_409_404_from_the_server(http: httpx.AsyncClient) -> None:
    account = await register(http)
    token = account["session"]["accessToken"]
    created = await http.post("/v1/api-keys", json={"name": "ci"}, headers=bearer(token))
    assert created.status_code == 200, created.text
    key = created.json()["apiKey"]

    # API keys are managed from a session, not with a key: PERMISSION_DENIED.
    denied = await http.post("/v1/api-keys", json={"name": "x"}, headers={"X-API-Key": key})
    assert denied.status_code == 403
    assert error_of(denied)["code"] == "PERMISSION_DENIED"
    assert reason_of(error_of(denied)) == "SESSION_REQUIRED"

    again = {"email": account["user"]["email"], "password": strong_password(), "name": "Twin"}
    taken = await http.post("/v1/auth/register", json=again)
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "ALREADY_EXISTS"

    missing = await http.delete(f"/v1/api-keys/{uuid.uuid4()}", headers=bearer(token))
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "NOT_FOUND"


async def test_400_with_field_violations(http: httpx.AsyncClient) -> None:
    bad = {"email": "not-an-email", "password": strong_password(), "name": "Someone"}
    reply = await http.post("/v1/auth/register", json=bad)
    assert reply.status_code == 400
    body = error_of(reply)
    assert body["code"] == "INVALID_ARGUMENT"
    requests = [d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    fields = {v["field"] for d in requests for v in d["fieldViolations"]}
    assert "email" in fields


async def test_429_with_rate_limit_headers(
    settings: Settings, stores: Stores, audit_log: AuditLog
) -> None:
    """Default limits (register 3 per hour per address). The sidecar forwards
    the client's address; the server believes it because the sidecar's
    address (loopback) is a trusted proxy, so each address has its bucket."""
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    async with custom_server(
        settings, stores, audit_log, rate_limits="", trusted_proxies=loopback
    ) as (grpc_server, _):
        async with sidecar(f"127.0.0.1:{grpc_server.port}") as running:
            async with httpx.AsyncClient(base_url=running.url, timeout=20) as client:
                address = f"198.51.100.{secrets.randbelow(250) + 1}"
                headers = {"X-Forwarded-For": address}
                for _ in range(3):
                    await register(client, **headers)
                refused = await client.post(
                    "/v1/auth/register",
                    json={"email": new_email(), "password": strong_password(), "name": "Four"},
                    headers=headers,
                )
                assert refused.status_code == 429
                assert error_of(refused)["code"] == "RESOURCE_EXHAUSTED"
                assert refused.headers["x-ratelimit-limit"] == "3"
                assert refused.headers["x-ratelimit-remaining"] == "0"
                assert int(refused.headers["x-ratelimit-reset"]) > 0
                assert int(refused.headers["retry-after"]) > 0
                kinds = {d["@type"].rsplit(".", 1)[-1] for d in error_of(refused)["details"]}
                assert "RetryInfo" in kinds
                # Another address has a bucket of its own: the hop was forwarded.
                await register(client, **{"X-Forwarded-For": "203.0.113.7"})


async def test_501_and_generic_messages_for_statuses_without_details() -> None:
    """A status the server's errors layer did not write (here: a method the
    upstream does not have) gets the table's HTTP status and a generic
    message, never library text."""
    async with fake_upstream({}) as target, sidecar(target) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            reply = await client.get("/v1/auth/password-policy")
    assert reply.status_code == 501
    assert error_of(reply) == {"code": "UNIMPLEMENTED", "message": "not implemented", "details": []}


async def test_upstream_down_is_503_without_its_address() -> None:
    async with sidecar("127.0.0.1:9", default_timeout_seconds=2) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            reply = await client.get("/v1/auth/password-policy")
    assert reply.status_code == 503
    body = error_of(reply)
    assert body["code"] == "UNAVAILABLE"
    assert "127.0.0.1" not in reply.text
    assert ":9" not in body["message"]


async def test_deadline_passes_through_as_504() -> None:
    async def slow(request: Any, context: Any) -> Any:
        await asyncio.sleep(2)
        return auth_pb2.GetCurrentUserResponse()

    handler = grpc.unary_unary_rpc_method_handler(
        slow,
        request_deserializer=auth_pb2.GetCurrentUserRequest.FromString,
        response_serializer=auth_pb2.GetCurrentUserResponse.SerializeToString,
    )
    async with fake_upstream({ME: handler}) as target, sidecar(target) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            late = await client.get("/v1/auth/me", headers={"Grpc-Timeout": "100m"})
            bad = await client.get("/v1/auth/me", headers={"Grpc-Timeout": "soon"})
    assert late.status_code == 504
    assert error_of(late)["code"] == "DEADLINE_EXCEEDED"
    assert bad.status_code == 400


# --- JSON mapping ----------------------------------------------------------------


async def test_camel_case_and_original_names_both_bind(http: httpx.AsyncClient) -> None:
    token = (await register(http))["session"]["accessToken"]
    when = "2099-01-02T03:04:05Z"
    camel = await http.post(
        "/v1/api-keys", json={"name": "camel", "expiresAt": when}, headers=bearer(token)
    )
    snake = await http.post(
        "/v1/api-keys", json={"name": "snake", "expires_at": when}, headers=bearer(token)
    )
    assert camel.status_code == snake.status_code == 200, (camel.text, snake.text)
    for reply in (camel, snake):
        key = reply.json()["key"]
        assert key["expiresAt"] == when
        assert "api_key_id" not in key
        assert uuid.UUID(key["apiKeyId"])
        assert key["revoked"] is False  # defaults are printed


async def test_unknown_fields_and_bad_bodies_are_refused(http: httpx.AsyncClient) -> None:
    unknown = await http.post("/v1/auth/login", json={"email": "a@b.co", "passwrd": "x"})
    assert unknown.status_code == 400
    assert error_of(unknown)["code"] == "INVALID_ARGUMENT"
    assert "passwrd" in error_of(unknown)["message"]

    not_json = await http.post(
        "/v1/auth/login", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    form = await http.post("/v1/auth/login", content=b"a=b", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    array = await http.post("/v1/auth/login", json=[1, 2])
    assert array.status_code == 400
    query = await http.get("/v1/auth/password-policy", params={"bogus": "1"})
    assert query.status_code == 400
    assert reason_of(error_of(query)) == "INVALID_REQUEST"


async def test_query_string_and_path_binding(http: httpx.AsyncClient) -> None:
    """Query parameters bind by JSON or original name; a path variable is
    percent-decoded into its field (an encoded slash stays inside the id)."""
    token = (await register(http))["session"]["accessToken"]
    for params in ({"pageSize": "5"}, {"page_size": "5"}):
        listed = await http.get("/v1/graphs", params=params, headers=bearer(token))
        assert listed.status_code == 200, listed.text
    too_big = await http.get("/v1/graphs", params={"pageSize": "101"}, headers=bearer(token))
    assert too_big.status_code == 400
    twice = await http.get("/v1/graphs?pageSize=1&pageSize=2", headers=bearer(token))
    assert twice.status_code == 400
    encoded = await http.get("/v1/graphs/not%2Fa-uuid", headers=bearer(token))
    assert encoded.status_code == 400  # routed to GetGraph; the id fails validation
    body = error_of(encoded)
    fields = {v["field"] for d in body["details"] for v in d.get("fieldViolations", [])}
    assert "graph_id" in fields


async def test_repeated_credentials_are_refused(http: httpx.AsyncClient) -> None:
    """Two Authorization headers are ambiguous: refused, never one picked."""
    reply = await http.get(
        "/v1/auth/me", headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
    )
    assert reply.status_code == 400
    assert error_of(reply)["details"][1]["fieldViolations"][0]["field"] == "authorization"


async def test_every_contract_route_is_served(http: httpx.AsyncClient) -> None:
    """Every http rule of the contract answers (no route is missing): without
    credentials each non-public RPC is refused with 401 by the server itself."""
    for binding in contract_bindings():
        path = binding.template.source
        for variable in binding.template.variables:
            path = path.replace("{" + variable + "}", str(uuid.uuid4()))
        reply = await http.request(binding.http_method, path, json={} if binding.body else None)
        body = error_of(reply) if reply.status_code >= 400 else {}
        assert reason_of(body) not in ("ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED"), path
        if binding.rpc.access != policy_pb2.ACCESS_PUBLIC:
            assert reply.status_code == 401, (binding.rpc.full_method, reply.text)


async def test_unknown_paths_and_methods(http: httpx.AsyncClient) -> None:
    missing = await http.post("/v1/nothing/here", json={})
    assert missing.status_code == 404
    assert reason_of(error_of(missing)) == "ROUTE_NOT_FOUND"
    wrong = await http.put("/v1/auth/login", json={})
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert reason_of(error_of(wrong)) == "METHOD_NOT_ALLOWED"


# --- streaming ---------------------------------------------------------------------


def _frames() -> list[graph_pb2.StreamQueryResponse]:
    column = graph_pb2.Column(name="n", type="INT64")
    row = graph_pb2.Row(values=[{"int_value": 2**62}])  # beyond a double's precision
    return [
        graph_pb2.StreamQueryResponse(columns=[column]),
        graph_pb2.StreamQueryResponse(batch=graph_pb2.RowBatch(rows=[row, row])),
        graph_pb2.StreamQueryResponse(summary=graph_pb2.StreamSummary(row_count=2)),
    ]


@asynccontextmanager
async def streaming_sidecar(fail_after: int | None = None) -> AsyncIterator[httpx.AsyncClient]:
    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        assert request.query == "MATCH (n) RETURN n"
        for index, frame in enumerate(_frames()):
            if fail_after is not None and index == fail_after:
                await context.abort(grpc.StatusCode.INTERNAL, "engine crashed at /srv/x")
            yield frame

    async with fake_upstream({STREAM: stream_handler(stream)}) as target, sidecar(target) as s:
        async with httpx.AsyncClient(base_url=s.url) as client:
            yield client


def _stream_path() -> str:
    return f"/v1/graphs/{uuid.uuid4()}/query:stream"


async def test_stream_as_ndjson() -> None:
    async with streaming_sidecar() as client:
        reply = await client.post(_stream_path(), json={"query": "MATCH (n) RETURN n"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [next(iter(line)) for line in lines] == ["result"] * 3
    assert lines[0]["result"]["columns"] == [{"name": "n", "type": "INT64"}]
    assert lines[1]["result"]["batch"]["rows"][0]["values"][0] == {"intValue": str(2**62)}
    assert lines[2]["result"]["summary"]["rowCount"] == "2"


async def test_stream_as_server_sent_events() -> None:
    async with streaming_sidecar() as client:
        reply = await client.post(
            _stream_path(),
            json={"query": "MATCH (n) RETURN n"},
            headers={"Accept": "text/event-stream"},
        )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [e for e in reply.text.split("\n\n") if e]
    assert len(events) == 3
    kind, data = events[2].split("\n")
    assert kind == "event: result"
    assert json.loads(data.removeprefix("data: "))["summary"]["rowCount"] == "2"


async def test_stream_error_after_data_is_the_last_frame() -> None:
    async with streaming_sidecar(fail_after=2) as client:
        reply = await client.post(_stream_path(), json={"query": "MATCH (n) RETURN n"})
    assert reply.status_code == 200  # the status line left with the first frame
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [next(iter(line)) for line in lines] == ["result", "result", "error"]
    error = lines[-1]["error"]
    assert error["code"] == "INTERNAL"
    assert "/srv/x" not in error["message"]  # no details blob: a generic message


async def test_stream_error_before_data_keeps_its_status() -> None:
    async with streaming_sidecar(fail_after=0) as client:
        reply = await client.post(_stream_path(), json={"query": "MATCH (n) RETURN n"})
    assert reply.status_code == 500
    assert error_of(reply)["code"] == "INTERNAL"


async def test_stream_query_through_the_real_server(http: httpx.AsyncClient) -> None:
    """StreamQuery on the real server: NDJSON rows once GraphService serves
    graphs; until then the sidecar must map its UNIMPLEMENTED to 501."""
    token = (await register(http))["session"]["accessToken"]
    created = await http.post("/v1/graphs", json={"name": "stream test"}, headers=bearer(token))
    if created.status_code == 501:
        assert error_of(created)["code"] == "UNIMPLEMENTED"
        assert reason_of(error_of(created)) == "NOT_IMPLEMENTED"
        return
    assert created.status_code == 200, created.text
    graph_id = created.json()["graph"]["graphId"]
    reply = await http.post(
        f"/v1/graphs/{graph_id}/query:stream",
        json={"query": "UNWIND [1, 2, 3] AS x RETURN x"},
        headers=bearer(token),
    )
    assert reply.status_code == 200, reply.text
    frames = [json.loads(line)["result"] for line in reply.text.splitlines()]
    rows = [r for f in frames if "batch" in f for r in f["batch"]["rows"]]
    assert [r["values"][0]["intValue"] for r in rows] == ["1", "2", "3"]
    assert frames[-1]["summary"]["rowCount"] == "3"
