"""The sidecar's OpenAPI 3.1 document: valid, complete, constrained, and true.

"True" is checked by schemathesis: requests generated from the document are
sent through the sidecar to a real graphgate server, as a signed-in user
(an API key), and no answer may be a server error or break its own schema.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# regress makes openapi-spec-validator read patterns as ECMA-262, as JSON
# Schema 2020-12 says; Python's `re` would refuse the contract's \p{...} classes.
import regress  # noqa: F401
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis import checks as st_checks

from graphgate.clients.gateway import GatewayOptions, RunningGateway, start_gateway
from graphgate.clients.gateway.bindings import contract_bindings
from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.server.settings import Settings
from graphgate.v1 import policy_pb2
from tests.conftest import custom_server
from tests.support import new_email, strong_password

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def descriptor_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contract with source info (comments): `scripts/lint` builds it; else build it."""
    image = ROOT / "build" / "graphgate.binpb"
    if image.exists():
        return image
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts/gen_protos.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built: Path = tmp_path_factory.mktemp("image") / "graphgate.binpb"
    module.build_image(ROOT / "proto", built)
    return built


@pytest.fixture(scope="module")
async def gateway(
    settings: Settings, stores: Stores, audit_log: AuditLog, descriptor_image: Path
) -> AsyncIterator[RunningGateway]:
    """A sidecar before a server of its own that trusts the sidecar's address,
    so the fuzzed sign-ins count against a test address, not 127.0.0.1."""
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    async with custom_server(settings, stores, audit_log, trusted_proxies=loopback) as (srv, _):
        options = GatewayOptions(upstream=f"127.0.0.1:{srv.port}", descriptor_set=descriptor_image)
        running = await start_gateway(options, "127.0.0.1", 0)
        try:
            yield running
        finally:
            await running.stop()


@pytest.fixture(scope="module")
async def document(gateway: RunningGateway) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        reply = await client.get("/openapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body: dict[str, Any] = reply.json()
    return body


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def _body(document: dict[str, Any], path: str) -> dict[str, Any]:
    """The request body schema of ``POST path`` (a component's, when a ``$ref``)."""
    operation = document["paths"][path]["post"]
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        return _schema(document, schema["$ref"].rsplit("/", 1)[-1])
    return schema


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator, OpenAPI 3.1 rules


def test_every_rpc_appears_with_its_method_path_and_security(document: dict[str, Any]) -> None:
    operation_ids = []
    for binding in contract_bindings():
        operation = document["paths"][binding.template.openapi_path][binding.http_method.lower()]
        assert operation["x-grpc-method"] == binding.rpc.full_method
        operation_ids.append(operation["operationId"])
        access = binding.rpc.access
        if access == policy_pb2.ACCESS_PUBLIC:
            assert operation["security"] == []
        elif access == policy_pb2.ACCESS_OPERATOR:
            assert operation["security"] == [{"operatorKey": []}]
        else:
            assert operation["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
        assert "401" in operation["responses"] or access == policy_pb2.ACCESS_PUBLIC
    assert len(operation_ids) == len(set(operation_ids))
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["apiKeyAuth"]["name"] == "X-API-Key"
    rotate = document["paths"]["/v1/api-keys/{api_key_id}:rotate"]["post"]
    assert rotate["parameters"][0]["schema"]["format"] == "uuid"


def test_validation_constraints_are_in_the_schemas(document: dict[str, Any]) -> None:
    body = _body(document, "/v1/auth/register")
    assert body["properties"]["email"]["format"] == "email"
    assert body["properties"]["email"]["maxLength"] == 254
    assert body["properties"]["name"]["pattern"] == "^[^\\p{C}]+$"
    assert set(body["required"]) == {"email", "password", "name"}
    assert body["additionalProperties"] is False

    get_graph = document["paths"]["/v1/graphs/{graph_id}"]["get"]
    assert get_graph["parameters"][0]["schema"]["format"] == "uuid"
    page_size = document["paths"]["/v1/graphs"]["get"]["parameters"][0]
    assert (page_size["name"], page_size["in"]) == ("pageSize", "query")
    assert (page_size["schema"]["minimum"], page_size["schema"]["maximum"]) == (0, 100)

    create_graph = _body(document, "/v1/graphs")
    assert create_graph["properties"]["schema"]["maxItems"] == 100
    assert create_graph["properties"]["schema"]["items"]["maxLength"] == 10000
    query = _body(document, "/v1/graphs/{graph_id}/query")
    assert "graphId" not in query["properties"]  # bound by the path
    assert query["properties"]["parameters"]["maxProperties"] == 64
    assert "pattern" in query["properties"]["parameters"]["propertyNames"]
    assert "100000 bytes" in query["properties"]["query"]["description"]
    member = _body(document, "/v1/graphs/{graph_id}/members")
    assert "ROLE_UNSPECIFIED" not in member["properties"]["role"]["enum"]
    upload = _body(document, "/v1/graphs/{graph_id}/uploads")
    assert "at most 107374182400" in upload["properties"]["sizeBytes"]["description"]


def test_proto3_json_forms(document: dict[str, Any]) -> None:
    session = _schema(document, "graphgate.v1.Session")
    assert session["properties"]["expiresInSeconds"]["type"] == "string"
    assert session["properties"]["expiresInSeconds"]["format"] == "int64"
    assert session["properties"]["expiresAt"]["format"] == "date-time"
    graph = _schema(document, "graphgate.v1.Graph")
    assert graph["properties"]["role"]["enum"][1] == "ROLE_ADMIN"
    value_list = _schema(document, "graphgate.v1.ValueList")
    assert value_list["properties"]["values"]["items"]["$ref"].endswith("graphgate.v1.Value")
    value = _schema(document, "graphgate.v1.Value")
    assert value["maxProperties"] == 1  # a oneof
    assert value["properties"]["intValue"]["type"] == "string"
    assert value["properties"]["listValue"]["$ref"].endswith("graphgate.v1.ValueList")
    # The contract's comments are the prose.
    assert session["properties"]["accessToken"]["description"].startswith("The JWT")
    stream = document["paths"]["/v1/graphs/{graph_id}/query:stream"]["post"]["responses"]["200"]
    assert set(stream["content"]) == {"application/x-ndjson", "text/event-stream"}


async def _api_key(base_url: str, address: str) -> str:
    headers = {"X-Forwarded-For": address}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=20) as client:
        account = {"email": new_email(), "password": strong_password(), "name": "Fuzz"}
        registered = await client.post("/v1/auth/register", json=account)
        token = registered.json()["session"]["accessToken"]
        created = await client.post(
            "/v1/api-keys", json={"name": "fuzz"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 200, created.text
        key: str = created.json()["apiKey"]
        return key


def _fuzz(
    document: dict[str, Any], base_url: str, headers: dict[str, str]
) -> tuple[list[str], set[str]]:
    """Run schemathesis over every non-operator operation; returns the failures
    and the operations that got at least one answer."""
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        st_checks.response_schema_conformance,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_headers_conformance,
    ]
    failures: list[str] = []
    answered: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        policy = operation.definition.raw.get("x-graphgate-policy", {})
        if policy.get("access") == "ACCESS_OPERATOR":
            continue  # needs the operator key; failed attempts would raise C20 alerts

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy())
        def exercise(case: Any) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=20)
            answered.add(case.operation.label)
            label = f"{case.operation.label} -> {response.status_code}"
            if response.status_code >= 500:
                body = response.json() if response.content else {}
                reasons = {d.get("reason") for d in body.get("details", [])}
                if not (response.status_code == 501 and "NOT_IMPLEMENTED" in reasons):
                    failures.append(f"{label}: server error {response.text[:200]}")
            try:
                case.validate_response(response, checks=checks)
            except Exception as exc:  # schemathesis groups check failures
                failures.append(f"{label}: {str(exc)[:300]}")

        exercise()
    return failures, answered


@pytest.mark.slow
async def test_schemathesis_no_server_error_and_no_schema_break(
    gateway: RunningGateway, document: dict[str, Any]
) -> None:
    """Generated requests for every operation, signed in with an API key: no
    5xx (501 NOT_IMPLEMENTED for a feature not landed yet excepted) and every
    response matches the document's status codes, media types and schemas."""
    address = f"192.0.2.{secrets.randbelow(250) + 1}"
    key = await _api_key(gateway.url, address)
    headers = {"X-API-Key": key, "X-Forwarded-For": address}
    failures, answered = await asyncio.to_thread(_fuzz, document, gateway.url, headers)
    assert not failures, "\n".join(failures[:20])
    expected = {"GET /healthz"} | {
        f"{b.http_method} {b.template.openapi_path}"
        for b in contract_bindings()
        if b.rpc.access != policy_pb2.ACCESS_OPERATOR
    }
    assert answered == expected
