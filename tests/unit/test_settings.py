"""The settings object: defaults, parsing, and every problem reported at once."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from graphgate.server.errors import ConfigurationError
from graphgate.server.settings import (
    Environment,
    Settings,
    load_settings,
    production_problems,
    setting_names,
)

STRONG = "Zq8v1Lr0Kp3Wn6Yx9Tb2Hd5Fg7Jc4Ma1"


def test_defaults_match_the_operator_surface() -> None:
    settings = load_settings({})
    assert settings.env is Environment.DEVELOPMENT
    assert settings.grpc_listen == "127.0.0.1:50051"
    assert settings.http_listen == "127.0.0.1:8080"
    assert settings.jwt_expiry_seconds == 1800
    assert settings.bcrypt_rounds == 14
    assert settings.api_key_bcrypt_rounds == 12
    assert settings.security_audit_enabled
    assert settings.rate_limit_enabled
    assert settings.embedded_postgres
    assert settings.embedded_valkey
    assert settings.embedded_s3
    # Relative to where graphgate starts, made absolute once (the embedded
    # servers and graph workers run in directories of their own).
    assert settings.data_dir == Path.cwd() / "var"


def test_every_documented_name_is_a_setting() -> None:
    names = setting_names()
    for env_name in (
        "GRAPHGATE_ENV",
        "GRAPHGATE_DATA_DIR",
        "GRAPHGATE_GRPC_LISTEN",
        "GRAPHGATE_HTTP_LISTEN",
        "DATABASE_URL",
        "VALKEY_URL",
        "S3_ENDPOINT_URL",
        "AWS_REGION",
        "JWT_SECRET_KEY",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_EXPIRY_HOURS",
        "CAPTCHA_ENABLED",
        "TURNSTILE_SECRET_KEY",
        "TURNSTILE_VERIFY_URL",
        "SECURITY_AUDIT_ENABLED",
        "RATE_LIMIT_ENABLED",
        "TRUSTED_PROXIES",
        "OPERATOR_API_KEY",
        "BACKUP_ENCRYPTION_KEYS",
    ):
        assert env_name in names, env_name
        assert names[env_name] in Settings.__dataclass_fields__


def test_values_are_parsed_and_typed() -> None:
    settings = load_settings(
        {
            "GRAPHGATE_DATA_DIR": "/srv/gg",
            "JWT_EXPIRY_HOURS": "0.25",
            "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7",
            "CAPTCHA_ENABLED": "yes",
            "VALKEY_URL": "valkey://127.0.0.1:6379/0",
        }
    )
    assert settings.data_dir == Path("/srv/gg")
    assert settings.jwt_expiry_seconds == 900
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
    )
    assert settings.captcha_enabled is True
    assert not settings.embedded_valkey


def test_all_bad_values_are_reported_together() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            {
                "GRAPHGATE_ENV": "staging",
                "GRAPHGATE_GRPC_LISTEN": "nowhere",
                "CAPTCHA_ENABLED": "maybe",
                "GRAPHGATE_TYPO": "1",
                "DATABASE_URL": "mysql://x",
            }
        )
    problems = " | ".join(caught.value.problems)
    assert len(caught.value.problems) == 5
    for name in (
        "GRAPHGATE_ENV",
        "GRAPHGATE_GRPC_LISTEN",
        "CAPTCHA_ENABLED",
        "GRAPHGATE_TYPO",
        "DATABASE_URL",
    ):
        assert name in problems


def test_short_jwt_secret_is_refused_even_in_development() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_settings({"JWT_SECRET_KEY": "short"})


def test_secrets_never_appear_in_repr() -> None:
    settings = load_settings({"JWT_SECRET_KEY": STRONG, "OPERATOR_API_KEY": "op-key-value-1"})
    assert STRONG not in repr(settings)
    assert "op-key-value-1" not in repr(settings)


@pytest.mark.security
def test_c21_production_lists_every_problem_at_once() -> None:
    """C21: production refuses to start and names every problem together."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            {
                "GRAPHGATE_ENV": "production",
                "JWT_SECRET_KEY": "dev-secret-change-me-0123456789abcdef",
                "CAPTCHA_ENABLED": "true",
            }
        )
    problems = caught.value.problems
    joined = " | ".join(problems)
    assert "DATABASE_URL" in joined
    assert "VALKEY_URL" in joined
    assert "development value" in joined
    assert "BACKUP_ENCRYPTION_KEYS" in joined
    assert "AWS_REGION" in joined
    assert "TURNSTILE_SECRET_KEY" in joined


@pytest.mark.security
def test_c21_a_complete_production_configuration_is_accepted() -> None:
    """C21: a production configuration with every part present starts."""
    settings = load_settings(
        {
            "GRAPHGATE_ENV": "production",
            "DATABASE_URL": "postgresql://gg@db.example:5432/gg?sslmode=verify-full",
            "VALKEY_URL": "valkeys://cache.example:6379/0",
            "JWT_SECRET_KEY": STRONG,
            "BACKUP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "AWS_REGION": "eu-west-1",
            # TLS ends at the load balancer in this deployment.
            "GRAPHGATE_TLS_OFFLOADED": "true",
        }
    )
    assert production_problems(settings) == []
    assert not settings.embedded_s3


def test_graph_engine_memory_is_set_in_mib_and_checked() -> None:
    settings = load_settings(
        {"GRAPHGATE_GRAPH_BUFFER_POOL_MIB": "512", "GRAPHGATE_GRAPH_WORKER_RSS_LIMIT_MIB": "8192"}
    )
    assert (settings.graph_buffer_pool_mib, settings.graph_worker_rss_limit_mib) == (512, 8192)
    defaults = load_settings({})
    assert (defaults.graph_buffer_pool_mib, defaults.graph_worker_rss_limit_mib) == (64, 4096)
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"GRAPHGATE_GRAPH_BUFFER_POOL_MIB": "8"})
    assert caught.value.problems == ["GRAPHGATE_GRAPH_BUFFER_POOL_MIB: at least 16"]
    # A limit one full pool would cross restarts the worker on every large query.
    with pytest.raises(ConfigurationError, match="GRAPHGATE_GRAPH_WORKER_RSS_LIMIT_MIB"):
        load_settings({"GRAPHGATE_GRAPH_BUFFER_POOL_MIB": "4096"})
