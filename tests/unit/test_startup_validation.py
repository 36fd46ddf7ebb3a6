"""C21: production refuses to start, listing every problem at once - one test per rule.

Each rule test starts from a complete production configuration that loads,
breaks exactly one thing and expects exactly that problem. The last test
runs ``python -m graphgate.server serve`` as an operator would.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from graphgate.server.errors import ConfigurationError
from graphgate.server.settings import load_settings, production_problems

pytestmark = pytest.mark.security

STRONG_JWT = "9f2c4b7e1a0d3f6c8b5e2a9d4c7f1b3e6a8d0c2f5b7e9a1c4d6f8b0e2a4c6d8f"
STRONG_OPERATOR = "0c9e8d7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d"
FERNET_KEY = Fernet.generate_key().decode()


def _write_certificate(directory: Path, name: str, *, days: float = 30.0) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    start, end = sorted((now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("c21-tls")
    cert, key = _write_certificate(directory, "server")
    _, other_key = _write_certificate(directory, "other")
    old_cert, old_key = _write_certificate(directory, "expired", days=-0.5)
    return {
        "cert": cert,
        "key": key,
        "other_key": other_key,
        "expired_cert": old_cert,
        "expired_key": old_key,
    }


@pytest.fixture
def good(certificates: dict[str, Path]) -> dict[str, str]:
    """A production configuration that starts."""
    return {
        "GRAPHGATE_ENV": "production",
        "DATABASE_URL": "postgresql://gg:pw@db.example:5432/gg?sslmode=verify-full",
        "VALKEY_URL": "valkeys://gg:pw@cache.example:6379/0",
        "JWT_SECRET_KEY": STRONG_JWT,
        "OPERATOR_API_KEY": STRONG_OPERATOR,
        "BACKUP_ENCRYPTION_KEYS": FERNET_KEY,
        "AWS_REGION": "eu-west-1",
        "GRAPHGATE_TLS_CERT_FILE": str(certificates["cert"]),
        "GRAPHGATE_TLS_KEY_FILE": str(certificates["key"]),
    }


def problems_of(environ: dict[str, str]) -> list[str]:
    """The problems load_settings reports (none: it loaded)."""
    try:
        load_settings(environ)
    except ConfigurationError as exc:
        return exc.problems
    return []


def only_problem(environ: dict[str, str]) -> str:
    problems = problems_of(environ)
    assert len(problems) == 1, problems
    return problems[0]


def without(environ: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in names}


def test_c21_a_complete_production_configuration_starts(good: dict[str, str]) -> None:
    settings = load_settings(good)
    assert production_problems(settings) == []
    assert settings.tls_enabled
    assert not settings.embedded_postgres
    assert not settings.embedded_valkey
    assert not settings.embedded_s3


def test_c21_database_url_is_required(good: dict[str, str]) -> None:
    assert only_problem(without(good, "DATABASE_URL")).startswith("DATABASE_URL: required")


@pytest.mark.parametrize("mode", ["", "?sslmode=disable", "?sslmode=prefer", "?x=sslmode=require"])
def test_c21_database_url_needs_tls(good: dict[str, str], mode: str) -> None:
    url = "postgresql://gg:pw@db.example:5432/gg" + mode
    assert "sslmode=require or verify-full" in only_problem({**good, "DATABASE_URL": url})


def test_c21_valkey_url_is_required(good: dict[str, str]) -> None:
    assert only_problem(without(good, "VALKEY_URL")).startswith("VALKEY_URL: required")


def test_c21_valkey_url_needs_tls(good: dict[str, str]) -> None:
    problem = only_problem({**good, "VALKEY_URL": "valkey://gg:pw@cache.example:6379/0"})
    assert problem == "VALKEY_URL: production requires TLS (valkeys:// or rediss://)"


def test_c21_valkey_url_may_not_switch_verification_off(good: dict[str, str]) -> None:
    url = "valkeys://gg:pw@cache.example:6379/0?ssl_cert_reqs=none"
    assert "TLS options in the URL are refused" in only_problem({**good, "VALKEY_URL": url})


def test_c21_embedded_servers_are_refused(good: dict[str, str]) -> None:
    """No DATABASE_URL or VALKEY_URL means embedded servers: refused; unset S3 means AWS S3."""
    problems = problems_of(without(good, "DATABASE_URL", "VALKEY_URL"))
    assert len(problems) == 2
    assert all("embedded" in p and "refused" in p for p in problems)
    assert not load_settings(without(good, "S3_ENDPOINT_URL")).embedded_s3


def test_c21_s3_endpoint_needs_https(good: dict[str, str]) -> None:
    problem = only_problem({**good, "S3_ENDPOINT_URL": "http://seaweedfs:8333"})
    assert problem == "S3_ENDPOINT_URL: production requires https://"


def test_c21_jwt_secret_is_required(good: dict[str, str]) -> None:
    assert only_problem(without(good, "JWT_SECRET_KEY")) == "JWT_SECRET_KEY: required in production"


def test_c21_jwt_secret_shorter_than_32_characters(good: dict[str, str]) -> None:
    problem = only_problem({**good, "JWT_SECRET_KEY": "9f2c4b7e1a0d3f6c8b5e2a9d4c7f1b3"})
    assert problem == "JWT_SECRET_KEY: shorter than 32 characters"


@pytest.mark.parametrize(
    "value",
    ["change-me-to-64-hex-characters-from-openssl-rand", "dev-secret-0123456789abcdef0123456789"],
)
def test_c21_jwt_secret_that_looks_like_a_development_value(
    good: dict[str, str], value: str
) -> None:
    problem = only_problem({**good, "JWT_SECRET_KEY": value})
    assert problem == "JWT_SECRET_KEY: looks like a development value"


def test_c21_every_key_of_the_rings_is_checked(good: dict[str, str]) -> None:
    ring = f'[{{"key": "{STRONG_JWT}", "created_at": 2, "activates_at": 2}},'
    ring += ' {"key": "test-key-0123456789abcdef0123456789", "created_at": 1, "activates_at": 1}]'
    problem = only_problem({**good, "GRAPHGATE_JWT_KEYRING": ring})
    assert problem == "GRAPHGATE_JWT_KEYRING: key 2: looks like a development value"


def test_c21_operator_key_must_be_strong(good: dict[str, str]) -> None:
    problem = only_problem({**good, "OPERATOR_API_KEY": "change-me-operator-api-key"})
    assert problem == "OPERATOR_API_KEY: shorter than 32 characters"


def test_c21_backup_encryption_key_is_required(good: dict[str, str]) -> None:
    problem = only_problem(without(good, "BACKUP_ENCRYPTION_KEYS"))
    assert problem == "BACKUP_ENCRYPTION_KEYS: required in production"


def test_c21_each_backup_key_must_be_a_fernet_key(good: dict[str, str]) -> None:
    keys = f"{FERNET_KEY},change-me-fernet-key"
    problem = only_problem({**good, "BACKUP_ENCRYPTION_KEYS": keys})
    assert problem == "BACKUP_ENCRYPTION_KEYS: key 2 of 2 is not a valid Fernet key"
    assert "change-me" not in problem


def test_c21_aws_region_is_required(good: dict[str, str]) -> None:
    assert only_problem(without(good, "AWS_REGION")) == "AWS_REGION: required in production"


def test_c21_captcha_on_needs_its_secret(good: dict[str, str]) -> None:
    problem = only_problem({**good, "CAPTCHA_ENABLED": "true"})
    assert problem == "TURNSTILE_SECRET_KEY: required when CAPTCHA_ENABLED is on"
    assert problems_of({**good, "CAPTCHA_ENABLED": "true", "TURNSTILE_SECRET_KEY": "x" * 35}) == []


def test_c21_tls_material_is_required_unless_offloaded(good: dict[str, str]) -> None:
    """Decision (C10): production serves TLS itself, or says a load balancer does."""
    bare = without(good, "GRAPHGATE_TLS_CERT_FILE", "GRAPHGATE_TLS_KEY_FILE")
    assert only_problem(bare).startswith("GRAPHGATE_TLS_CERT_FILE: required in production")
    assert problems_of({**bare, "GRAPHGATE_TLS_OFFLOADED": "true"}) == []


def test_c21_tls_files_must_be_readable(good: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    problem = only_problem({**good, "GRAPHGATE_TLS_CERT_FILE": missing})
    assert problem.startswith(f"GRAPHGATE_TLS_CERT_FILE: {missing} cannot be read")


def test_c21_tls_key_must_match_its_certificate(
    good: dict[str, str], certificates: dict[str, Path]
) -> None:
    problem = only_problem({**good, "GRAPHGATE_TLS_KEY_FILE": str(certificates["other_key"])})
    assert problem.startswith("GRAPHGATE_TLS_KEY_FILE: not a key, or not the key of")


def test_c21_tls_certificate_must_be_valid_now(
    good: dict[str, str], certificates: dict[str, Path]
) -> None:
    expired = {
        "GRAPHGATE_TLS_CERT_FILE": str(certificates["expired_cert"]),
        "GRAPHGATE_TLS_KEY_FILE": str(certificates["expired_key"]),
    }
    assert only_problem({**good, **expired}).startswith(
        "GRAPHGATE_TLS_CERT_FILE: certificate not valid now"
    )


def test_c21_all_problems_are_listed_together(tmp_path: Path) -> None:
    """Every rule broken at once: every problem in one error, each once."""
    environ = {
        "GRAPHGATE_ENV": "production",
        "JWT_SECRET_KEY": "dev-secret-change-me-0123456789abcdef",
        "OPERATOR_API_KEY": "short",
        "BACKUP_ENCRYPTION_KEYS": "not-a-fernet-key",
        "CAPTCHA_ENABLED": "true",
        "S3_ENDPOINT_URL": "http://seaweedfs:8333",
        "GRAPHGATE_VALKEY_CA_FILE": str(tmp_path / "missing-ca.pem"),
    }
    problems = problems_of(environ)
    assert len(problems) == len(set(problems)), problems
    names = [p.split(":", 1)[0] for p in problems]
    assert names == [
        "DATABASE_URL",
        "VALKEY_URL",
        "S3_ENDPOINT_URL",
        "JWT_SECRET_KEY",
        "OPERATOR_API_KEY",
        "BACKUP_ENCRYPTION_KEYS",
        "AWS_REGION",
        "TURNSTILE_SECRET_KEY",
        "GRAPHGATE_TLS_CERT_FILE",
        "GRAPHGATE_VALKEY_CA_FILE",
        # Not production-only: a CA file without a TLS URL is wrong anywhere.
        "GRAPHGATE_VALKEY_CA_FILE",
    ]


def test_c21_problems_never_quote_secret_values(good: dict[str, str]) -> None:
    secrets = {
        "JWT_SECRET_KEY": "dev-secret-change-me-0123456789abcdef",
        "OPERATOR_API_KEY": "password-password-password-1234567",
        "BACKUP_ENCRYPTION_KEYS": "zzzz-not-fernet-zzzz",
        "GRAPHGATE_JWT_KEYRING": '[{"key": "ring-secret-material"',
    }
    joined = " | ".join(problems_of({**good, **secrets}))
    assert joined
    for value in ("dev-secret", "password-password", "zzzz", "ring-secret-material"):
        assert value not in joined


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_c21_serve_refuses_to_start_and_names_each_problem(tmp_path: Path) -> None:
    """`graphgate serve` in production with bad settings: exit 2, one line per problem,
    nothing started (not even the data directory)."""
    data_dir = tmp_path / "data"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHGATE_", "JWT_"))}
    for name in ("DATABASE_URL", "VALKEY_URL", "S3_ENDPOINT_URL", "AWS_REGION", "CAPTCHA_ENABLED"):
        environ.pop(name, None)
    environ.update(
        GRAPHGATE_ENV="production",
        GRAPHGATE_DATA_DIR=str(data_dir),
        GRAPHGATE_GRPC_LISTEN=f"127.0.0.1:{_free_port()}",
        JWT_SECRET_KEY="dev-secret-change-me-0123456789abcdef",
        BACKUP_ENCRYPTION_KEYS="change-me-fernet-key",
        CAPTCHA_ENABLED="true",
    )
    result = subprocess.run(
        [sys.executable, "-m", "graphgate.server", "serve"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    prefix = "graphgate: configuration error: "
    assert all(line.startswith(prefix) for line in lines), lines
    named = [line.removeprefix(prefix).split(":", 1)[0] for line in lines]
    assert named == [
        "DATABASE_URL",
        "VALKEY_URL",
        "JWT_SECRET_KEY",
        "BACKUP_ENCRYPTION_KEYS",
        "AWS_REGION",
        "TURNSTILE_SECRET_KEY",
        "GRAPHGATE_TLS_CERT_FILE",
    ]
    assert "dev-secret" not in result.stderr
    assert not data_dir.exists()
