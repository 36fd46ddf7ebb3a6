"""The SDK's targets (TLS decisions) and the CLI config file (no sockets)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from graphgate.clients import ConfigError
from graphgate.clients.auth import ApiKeyCredentials, SessionCredentials
from graphgate.clients.config import (
    load_client_settings,
    read_config,
    update_config,
    write_config,
)
from graphgate.clients.target import resolve_target


@pytest.mark.parametrize(
    ("url", "address", "secure"),
    [
        ("grpc://127.0.0.1:50051", "127.0.0.1:50051", False),
        ("grpc://db.example.com", "db.example.com:50051", False),
        ("grpcs://db.example.com", "db.example.com:443", True),
        ("https://db.example.com:8443", "db.example.com:8443", True),
        ("localhost:50051", "localhost:50051", False),
        ("[::1]:50051", "[::1]:50051", False),
        ("db.example.com:50051", "db.example.com:50051", True),
        ("10.0.0.5:50051", "10.0.0.5:50051", True),
    ],
)
def test_targets_are_tls_unless_local_or_asked(url: str, address: str, secure: bool) -> None:
    target = resolve_target(url)
    assert (target.address, target.secure) == (address, secure)


def test_tls_option_overrides_the_scheme(tmp_path: Path) -> None:
    assert not resolve_target("db.example.com:1", tls=False).secure
    assert resolve_target("grpc://127.0.0.1:1", tls=True).secure
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    assert resolve_target("grpc://127.0.0.1:1", tls=ca).secure
    with pytest.raises(ValueError, match="scheme"):
        resolve_target("ftp://x")
    with pytest.raises(ValueError, match="HOST:PORT"):
        resolve_target("no-port")


def test_secrets_stay_out_of_repr() -> None:
    assert "secret" not in repr(ApiKeyCredentials("gg_secret"))
    creds = SessionCredentials(email="a@example.com", password="secret-pass")
    assert "secret" not in repr(creds)
    with pytest.raises(ValueError, match="API key"):
        ApiKeyCredentials("has space")


def test_session_is_due_at_half_its_life_at_most() -> None:
    now = [100.0]
    creds = SessionCredentials(clock=lambda: now[0], refresh_margin=60)

    class Issued:
        access_token = "a.b.c"
        expires_in_seconds = 10

    creds.accept(Issued())
    assert not creds.due()
    now[0] += 5.1
    assert creds.due()
    assert creds.alive()
    now[0] += 5
    assert not creds.alive()
    creds.invalidate("another token")
    assert creds.token == "a.b.c"
    creds.invalidate("a.b.c")
    assert creds.token is None


def test_config_is_written_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    write_config(path, {"url": "grpc://h:1", "session": {"email": 'a"b@example.com'}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_config(path) == {"url": "grpc://h:1", "session": {"email": 'a"b@example.com'}}
    update_config(path, api_key="gg_k", url=None)
    assert read_config(path) == {"api_key": "gg_k", "session": {"email": 'a"b@example.com'}}
    assert read_config(tmp_path / "missing.toml") == {}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o700 | 0o020])
def test_config_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text('api_key = "gg_k"\n')
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        read_config(path)
    assert caught.value.reason == "CONFIG_UNSAFE"


def test_broken_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("url = ")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="TOML"):
        read_config(path)


def test_settings_precedence(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_config(
        path,
        {
            "url": "grpc://file:1",
            "api_key": "gg_file",
            "session": {"access_token": "t", "email": "e@example.com"},
        },
    )
    from_file = load_client_settings({}, config_path=path)
    assert (from_file.url, from_file.api_key, from_file.token) == ("grpc://file:1", "gg_file", "t")
    assert from_file.client_kwargs() == {"api_key": "gg_file"}
    env = {"GRAPHGATE_URL": "grpc://env:1", "GRAPHGATE_API_KEY": "gg_env"}
    from_env = load_client_settings(env, config_path=path)
    assert (from_env.url, from_env.api_key) == ("grpc://env:1", "gg_env")
    assert load_client_settings(env, config_path=path, url="grpc://flag:1").url == "grpc://flag:1"
    assert "gg_env" not in repr(from_env)
    default = load_client_settings({"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert default.url == "grpc://127.0.0.1:50051"
    assert default.client_kwargs() == {}
