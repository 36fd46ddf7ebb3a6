"""The container image (Dockerfile, .dockerignore) and the production-like compose
setup (infra/compose): non-root, health-checked, no secrets baked in or checked in,
graphs only on the graph node.

No Docker engine runs here, so these tests read the files; they check what a
reviewer would check by eye, plus the contracts with the server (module
names, setting names) that a rename elsewhere would silently break.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from graphgate.server.errors import ConfigurationError
from graphgate.server.settings import load_settings, setting_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "infra" / "compose"


# ------------------------------------------------------------ Dockerfile ----


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), one list per stage."""
    text = (ROOT / "Dockerfile").read_text()
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[list[tuple[str, str]]] = [[]]
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), args.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for key, args in stage if key == keyword]


@pytest.mark.security
def test_image_runs_as_a_non_root_user() -> None:
    """C23: the runtime stage switches to uid 10001 before the entry point; never root."""
    *_, runtime = dockerfile_stages()
    users = instructions(runtime, "USER")
    assert users, "the runtime stage never sets USER"
    user = users[-1].split(":")[0]
    assert user == "10001"
    keywords = [key for key, _ in runtime]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert all(u.split(":")[0] not in {"0", "root"} for u in users)


@pytest.mark.security
def test_image_health_check_asks_the_grpc_health_service() -> None:
    """C23/C18: HEALTHCHECK runs graphgate's grpc.health.v1 probe, a module that exists."""
    *_, runtime = dockerfile_stages()
    (check,) = instructions(runtime, "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + len("CMD") :].strip())
    assert command[-2:] == ["-m", "graphgate.server.healthcheck"]
    assert importlib.util.find_spec("graphgate.server.healthcheck") is not None
    assert "--timeout=" in check


def test_image_is_multi_stage_on_python_312_slim() -> None:
    """The project is installed into a venv in a build stage; the runtime stage copies it."""
    preamble, build, runtime = dockerfile_stages()
    assert ("ARG", "PYTHON_IMAGE=python:3.12-slim") in preamble
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert any("pip install ." in args for args in instructions(build, "RUN"))
    assert "--from=build /opt/venv /opt/venv" in instructions(runtime, "COPY")


def test_image_serves_graphgate_with_its_data_on_a_volume() -> None:
    """Ports, entry point, command and the data volume operators rely on."""
    *_, runtime = dockerfile_stages()
    assert instructions(runtime, "EXPOSE") == ["50051 8080"]
    assert instructions(runtime, "ENTRYPOINT") == ['["graphgate"]']
    assert instructions(runtime, "CMD") == ['["serve"]']
    assert instructions(runtime, "VOLUME") == ['["/data"]']
    env = " ".join(instructions(runtime, "ENV"))
    assert "GRAPHGATE_DATA_DIR=/data" in env
    # Settings the image sets must be real ones: the loader refuses unknown GRAPHGATE_* names.
    assert set(re.findall(r"\b(GRAPHGATE_[A-Z_]+)=", env)) <= set(setting_names())


def test_image_copies_every_package_the_distribution_maps() -> None:
    """A new top-level package in setup.py must also be copied into the build stage."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    top_level = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "_TOP_LEVEL" for t in node.targets)
    )
    _, build, _ = dockerfile_stages()
    copied = {
        part.rstrip("/") for args in instructions(build, "COPY") for part in args.split()[:-1]
    }
    assert {*top_level, "gen", "pyproject.toml", "setup.py", "README.md"} <= copied
    for source in copied:
        assert (ROOT / source).exists(), source


@pytest.mark.security
def test_build_context_excludes_secrets_and_local_state() -> None:
    """C12: env files, keys, the venv and git history never reach the build context."""
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", ".env.*", "**/*.env", "**/*.pem", "**/*.key"} <= ignored


# --------------------------------------------------------------- compose ----


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE_DIR / "graphgate.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_compose_runs_two_api_replicas_with_sidecars_behind_a_load_balancer(
    compose: dict[str, Any],
) -> None:
    """The production-like topology: lb -> 2 x (API + sidecar), one graph node, shared stores."""
    services = compose["services"]
    assert set(services) >= {
        "lb",
        "api-1",
        "api-2",
        "gateway-1",
        "gateway-2",
        "graph-node",
        "postgres",
        "valkey",
        "seaweedfs",
    }
    for n in (1, 2):
        assert services[f"api-{n}"]["command"] == ["serve", "--no-gateway"]
        assert services[f"gateway-{n}"]["command"] == ["gateway"]
        assert services[f"gateway-{n}"]["network_mode"] == f"service:api-{n}"
    nginx = (COMPOSE_DIR / "nginx.conf").read_text()
    for n in (1, 2):
        assert f"server api-{n}:50051" in nginx
        assert f"server api-{n}:8080" in nginx
    assert "grpc_pass grpc://" in nginx


@pytest.mark.security
def test_graphs_live_only_on_the_graph_node(compose: dict[str, Any]) -> None:
    """C9: one process owns the graphs volume (one writer per graph); replicas keep
    nothing durable."""
    holders = [
        name
        for name, service in compose["services"].items()
        if any(str(v).split(":")[0] == "graphs" for v in service.get("volumes", []))
    ]
    assert holders == ["graph-node"]
    for n in (1, 2):
        api = compose["services"][f"api-{n}"]
        assert "volumes" not in api
        assert any(t.startswith("/data:") for t in api["tmpfs"])


@pytest.mark.security
def test_only_the_load_balancer_is_published(compose: dict[str, Any]) -> None:
    """C10/C23: data services sit on an internal network; only the lb publishes ports,
    on loopback unless PUBLISH_ADDRESS says otherwise."""
    services = compose["services"]
    published = [name for name, service in services.items() if service.get("ports")]
    assert published == ["lb"]
    for port in services["lb"]["ports"]:
        assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:")
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("postgres", "valkey", "seaweedfs", "graph-node"):
        assert services[name]["networks"] == ["backend"], name


@pytest.mark.security
def test_graphgate_containers_are_locked_down(compose: dict[str, Any]) -> None:
    """C23: graphgate containers drop every capability, cannot gain privileges and run
    on a read-only root."""
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("${GRAPHGATE_IMAGE"):
            assert service["cap_drop"] == ["ALL"], name
            assert service["read_only"] is True, name
            assert "no-new-privileges:true" in service["security_opt"], name


@pytest.mark.security
def test_load_balancer_enforces_sizes_and_owns_x_forwarded_for(compose: dict[str, Any]) -> None:
    """C6/C22: 8 MB bodies and 8 KB headers at the edge; X-Forwarded-For is replaced
    (never appended) by the lb, and the lb is what TRUSTED_PROXIES trusts."""
    nginx = (COMPOSE_DIR / "nginx.conf").read_text()
    assert re.search(r"^\s*client_max_body_size\s+8m;", nginx, re.M)
    assert re.search(r"^\s*large_client_header_buffers\s+4\s+8k;", nginx, re.M)
    forwarded = re.findall(r"(?:grpc|proxy)_set_header\s+X-Forwarded-For\s+(\S+);", nginx)
    assert forwarded == ["$remote_addr", "$remote_addr"]
    assert "$proxy_add_x_forwarded_for" not in nginx
    lb_address = compose["services"]["lb"]["networks"]["edge"]["ipv4_address"]
    trusted = compose["x-graphgate"]["environment"]["TRUSTED_PROXIES"].split(",")
    assert f"{lb_address}/32" in trusted


@pytest.mark.security
def test_env_example_holds_no_real_secrets() -> None:
    """C12/C21: every secret in the example is a placeholder, and production refuses to
    start on an unedited copy."""
    values = env_example()
    secrets = (
        "JWT_SECRET_KEY",
        "OPERATOR_API_KEY",
        "BACKUP_ENCRYPTION_KEYS",
        "POSTGRES_PASSWORD",
        "VALKEY_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
    for key in secrets:
        assert "change" in values[key].lower(), key
    assert values["TURNSTILE_SECRET_KEY"] == ""
    assert values["GRAPHGATE_ENV"] == "production"
    derived = {
        "DATABASE_URL": "postgresql://graphgate:x@postgres:5432/graphgate?sslmode=require",
        "VALKEY_URL": "valkey://:x@valkey:6379/0",
        "S3_ENDPOINT_URL": "http://seaweedfs:8333",
    }
    with pytest.raises(ConfigurationError) as refused:
        load_settings({**values, **derived})
    assert any(p.startswith("JWT_SECRET_KEY") for p in refused.value.problems)
    ignore = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert "graphgate.env" in ignore


def test_every_graphgate_setting_named_is_a_real_one(compose: dict[str, Any]) -> None:
    """The loader refuses unknown GRAPHGATE_* names, so a typo here would stop every container."""
    known = set(setting_names())
    named = {k for k in env_example() if k.startswith("GRAPHGATE_")}
    named |= {k for k in compose["x-graphgate"]["environment"] if k.startswith("GRAPHGATE_")}
    assert named <= known, named - known
    assert set(compose["x-graphgate"]["environment"]) <= known
