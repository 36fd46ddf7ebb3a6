"""The one settings object, read from the environment once, at start.

Every knob of graphgate is a field of :class:`Settings`; nothing else reads
``os.environ``. :func:`load_settings` collects every problem before failing,
so an operator fixes a bad configuration in one go.

Security: secrets (JWT key, operator key, backup keys, CAPTCHA secret) are
never part of ``repr`` and never logged. In production :func:`load_settings`
refuses weak or missing secrets and embedded servers (C21).
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from graphgate.server.errors import ConfigurationError

#: Values that look like a development or example JWT secret (C21).
_WEAK_SECRET_MARKERS = ("change", "secret", "dev", "test", "example", "default", "password")


class Environment(enum.Enum):
    """Where the service runs; production turns on the strict startup checks."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class CaptchaMode(enum.Enum):
    """When a CAPTCHA token is required on login (registration always needs one)."""

    ALWAYS = "always"
    ON_THREAT = "on_threat"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Settings:
    """graphgate's configuration. Build it with :func:`load_settings`."""

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("var")
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    log_level: str = "INFO"

    database_url: str | None = field(default=None, repr=False)
    valkey_url: str | None = field(default=None, repr=False)
    s3_endpoint_url: str | None = None
    s3_bucket: str = "graphgate"
    s3_access_key_id: str | None = field(default=None, repr=False)
    s3_secret_access_key: str | None = field(default=None, repr=False)
    aws_region: str | None = None

    jwt_secret_key: str | None = field(default=None, repr=False)
    jwt_issuer: str = "graphgate"
    jwt_audience: str = "graphgate-api"
    jwt_expiry_seconds: int = 1800
    refresh_grace_seconds: int = 5

    bcrypt_rounds: int = 14
    api_key_bcrypt_rounds: int = 12

    captcha_enabled: bool = False
    captcha_mode: CaptchaMode = CaptchaMode.ALWAYS
    turnstile_secret_key: str | None = field(default=None, repr=False)
    turnstile_verify_url: str = "https://challenges.cloudflare.com/turnstile/v0/siteverify"

    security_audit_enabled: bool = True
    rate_limit_enabled: bool = True
    trusted_proxies: tuple[IPNetwork, ...] = ()
    operator_api_key: str | None = field(default=None, repr=False)
    backup_encryption_keys: tuple[str, ...] = field(default=(), repr=False)

    #: Replicas sharing Valkey: while Valkey is down each enforces limit / replicas.
    replicas: int = 1
    rate_limits: str = ""

    max_message_bytes: int = 8 * 1024 * 1024
    max_concurrent_rpcs: int = 1000
    shutdown_grace_seconds: float = 10.0
    drain_pause_seconds: float = 1.0

    @property
    def is_production(self) -> bool:
        """True when the strict production rules apply."""
        return self.env is Environment.PRODUCTION

    @property
    def embedded_postgres(self) -> bool:
        """True when no DATABASE_URL is set and PostgreSQL runs embedded."""
        return self.database_url is None

    @property
    def embedded_valkey(self) -> bool:
        """True when no VALKEY_URL is set and Valkey runs embedded."""
        return self.valkey_url is None

    @property
    def embedded_s3(self) -> bool:
        """True when no S3_ENDPOINT_URL is set and SeaweedFS runs embedded.

        In production an unset endpoint means AWS S3 itself, never embedded.
        """
        return self.s3_endpoint_url is None and not self.is_production


# --- parsing -------------------------------------------------------------

_Parser = Callable[[str], object]


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a positive number, got {raw!r}")
    return value


def _enum(kind: type[enum.Enum]) -> _Parser:
    def parse(raw: str) -> object:
        try:
            return kind(raw.strip().lower())
        except ValueError:
            allowed = ", ".join(str(m.value) for m in kind)
            raise ValueError(f"expected one of {allowed}, got {raw!r}") from None

    return parse


def _listen(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    return raw


def _url(schemes: tuple[str, ...]) -> _Parser:
    def parse(raw: str) -> str:
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
        if scheme not in schemes:
            raise ValueError(f"expected a URL starting with {' or '.join(schemes)}://")
        return raw

    return parse


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip())


def _keys(raw: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def _rounds(raw: str) -> int:
    value = int(raw)
    if not 4 <= value <= 31:
        raise ValueError(f"expected bcrypt rounds from 4 to 31, got {raw!r}")
    return value


def _hours_to_seconds(raw: str) -> int:
    return round(_positive_float(raw) * 3600)


def _rate_limits(raw: str) -> str:
    from graphgate.server.services.rate_limits import parse_windows

    parse_windows(raw)
    return raw


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return value


#: Environment name -> (field name, parser): the single list of settings names.
_SETTINGS: dict[str, tuple[str, _Parser]] = {
    "GRAPHGATE_ENV": ("env", _enum(Environment)),
    "GRAPHGATE_DATA_DIR": ("data_dir", Path),
    "GRAPHGATE_GRPC_LISTEN": ("grpc_listen", _listen),
    "GRAPHGATE_HTTP_LISTEN": ("http_listen", _listen),
    "GRAPHGATE_LOG_LEVEL": ("log_level", _log_level),
    "DATABASE_URL": ("database_url", _url(("postgres", "postgresql"))),
    "VALKEY_URL": ("valkey_url", _url(("valkey", "valkeys", "redis", "rediss", "unix"))),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", _url(("http", "https"))),
    "GRAPHGATE_S3_BUCKET": ("s3_bucket", str),
    "AWS_REGION": ("aws_region", str),
    "AWS_ACCESS_KEY_ID": ("s3_access_key_id", str),
    "AWS_SECRET_ACCESS_KEY": ("s3_secret_access_key", str),
    "JWT_SECRET_KEY": ("jwt_secret_key", str),
    "JWT_ISSUER": ("jwt_issuer", str),
    "JWT_AUDIENCE": ("jwt_audience", str),
    "JWT_EXPIRY_HOURS": ("jwt_expiry_seconds", _hours_to_seconds),
    "GRAPHGATE_REFRESH_GRACE_SECONDS": ("refresh_grace_seconds", _positive_int),
    "GRAPHGATE_BCRYPT_ROUNDS": ("bcrypt_rounds", _rounds),
    "GRAPHGATE_API_KEY_BCRYPT_ROUNDS": ("api_key_bcrypt_rounds", _rounds),
    "CAPTCHA_ENABLED": ("captcha_enabled", _bool),
    "GRAPHGATE_CAPTCHA_MODE": ("captcha_mode", _enum(CaptchaMode)),
    "TURNSTILE_SECRET_KEY": ("turnstile_secret_key", str),
    "TURNSTILE_VERIFY_URL": ("turnstile_verify_url", _url(("http", "https"))),
    "SECURITY_AUDIT_ENABLED": ("security_audit_enabled", _bool),
    "RATE_LIMIT_ENABLED": ("rate_limit_enabled", _bool),
    "TRUSTED_PROXIES": ("trusted_proxies", _networks),
    "OPERATOR_API_KEY": ("operator_api_key", str),
    "BACKUP_ENCRYPTION_KEYS": ("backup_encryption_keys", _keys),
    "GRAPHGATE_REPLICAS": ("replicas", _positive_int),
    "GRAPHGATE_RATE_LIMITS": ("rate_limits", _rate_limits),
    "GRAPHGATE_MAX_MESSAGE_BYTES": ("max_message_bytes", _positive_int),
    "GRAPHGATE_MAX_CONCURRENT_RPCS": ("max_concurrent_rpcs", _positive_int),
    "GRAPHGATE_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", _positive_float),
}

_FIELD_NAMES = {f.name for f in fields(Settings)}


def setting_names() -> dict[str, str]:
    """Environment variable name -> field name, for docs and the CLI."""
    return {env: name for env, (name, _) in _SETTINGS.items()}


def load_settings(environ: Mapping[str, str], **overrides: object) -> Settings:
    """Build :class:`Settings` from ``environ`` (and keyword overrides, for the CLI).

    Raises :class:`ConfigurationError` listing every problem: unparsable values,
    unknown ``GRAPHGATE_*`` names (typos), and in production every rule of C21.
    """
    problems: list[str] = []
    values: dict[str, object] = {}
    for env_name, raw in environ.items():
        spec = _SETTINGS.get(env_name)
        if spec is None:
            if env_name.startswith("GRAPHGATE_"):
                problems.append(f"{env_name}: unknown setting")
            continue
        if raw == "":
            continue
        name, parse = spec
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            problems.append(f"{env_name}: {exc}")
    for name, value in overrides.items():
        if name not in _FIELD_NAMES:
            raise TypeError(f"unknown settings field {name!r}")
        if value is not None:
            values[name] = value
    if problems:
        raise ConfigurationError(problems)
    settings = Settings(**values)  # type: ignore[arg-type]
    problems = production_problems(settings) if settings.is_production else []
    problems += _consistency_problems(settings)
    if problems:
        raise ConfigurationError(problems)
    return settings


def _consistency_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.jwt_secret_key is not None and len(settings.jwt_secret_key.encode()) < 32:
        problems.append("JWT_SECRET_KEY: must be at least 32 bytes (HS256)")
    if settings.captcha_enabled and not settings.turnstile_secret_key and settings.is_production:
        problems.append("TURNSTILE_SECRET_KEY: required when CAPTCHA_ENABLED is on")
    if len(settings.s3_bucket) < 3:
        problems.append("GRAPHGATE_S3_BUCKET: bucket names need at least 3 characters")
    return problems


def production_problems(settings: Settings) -> list[str]:
    """Every reason ``settings`` must not run in production (C21), at once."""
    problems = []
    if settings.database_url is None:
        problems.append("DATABASE_URL: required in production (embedded PostgreSQL refused)")
    elif "sslmode=require" not in settings.database_url and "sslmode=verify" not in (
        settings.database_url
    ):
        problems.append("DATABASE_URL: production requires sslmode=require or verify-full")
    if settings.valkey_url is None:
        problems.append("VALKEY_URL: required in production (embedded Valkey refused)")
    secret = settings.jwt_secret_key or ""
    if not secret:
        problems.append("JWT_SECRET_KEY: required in production")
    elif len(secret.encode()) < 32:
        problems.append("JWT_SECRET_KEY: shorter than 32 characters")
    elif any(marker in secret.lower() for marker in _WEAK_SECRET_MARKERS):
        problems.append("JWT_SECRET_KEY: looks like a development value")
    if not settings.backup_encryption_keys:
        problems.append("BACKUP_ENCRYPTION_KEYS: required in production")
    if not settings.aws_region:
        problems.append("AWS_REGION: required in production")
    if settings.captcha_enabled and not settings.turnstile_secret_key:
        problems.append("TURNSTILE_SECRET_KEY: required when CAPTCHA_ENABLED is on")
    return problems
