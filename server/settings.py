"""The one settings object, read from the environment once, at start.

Every knob of graphgate is a field of :class:`Settings`; nothing else reads
``os.environ``. :func:`load_settings` collects every problem before failing,
so an operator fixes a bad configuration in one go.

Security: secrets (JWT key, operator key, backup keys, CAPTCHA secret) are
never part of ``repr`` and never logged. In production :func:`load_settings`
refuses weak or missing secrets and embedded servers (C21), plaintext
links to its stores and clients (C10), and backup keys that are not Fernet
keys. Parse errors never quote a secret's value.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeGuard
from urllib.parse import parse_qs, urlsplit

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


class SecretsSource(enum.Enum):
    """Where secrets come from: the environment, or AWS Secrets Manager (C12)."""

    ENV = "env"
    AWS = "aws"


#: Component secrets read under the base secret ``graphgate/{env}`` (C12).
DEFAULT_SECRET_COMPONENTS = ("database", "valkey", "jwt", "operator", "backup", "captcha")


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One key of a key ring (JWT signing keys, operator API keys; C13).

    ``activates_at`` (Unix seconds) is when the key may start being *used*
    (signing, or presented by operators); until then it is only *accepted*,
    so every replica knows a key before any replica relies on it.
    """

    key: str = field(repr=False)
    created_at: float
    activates_at: float

    def to_json(self) -> dict[str, object]:
        """The JSON object this key is stored as in a secret."""
        return {"key": self.key, "created_at": self.created_at, "activates_at": self.activates_at}


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

    #: Key of the digests that stand for IPs and accounts in Valkey. It must not
    #: rotate with the JWT key (that would reset brute-force and rate windows).
    identity_hash_key: str | None = field(default=None, repr=False)

    #: Browser origins allowed to call the REST sidecar (CORS).
    cors_origins: tuple[str, ...] = ()

    #: Prometheus scrape endpoint (HOST:PORT); off when unset.
    metrics_listen: str | None = None
    otlp_endpoint: str | None = None
    otlp_protocol: str = "grpc"
    otlp_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    otlp_ca_file: Path | None = None
    trace_sample_ratio: float = 1.0

    max_message_bytes: int = 8 * 1024 * 1024
    max_concurrent_rpcs: int = 512
    #: Engine memory per open graph; it also bounds one query's result.
    graph_buffer_pool_mib: int = 64
    #: A graph worker past this size is restarted (a statement the engine
    #: cannot interrupt must cost one worker, not the machine).
    graph_worker_rss_limit_mib: int = 4096
    shutdown_grace_seconds: float = 10.0
    drain_pause_seconds: float = 1.0

    # C10: TLS on the gRPC listener (mTLS when a client CA is set) and to the stores.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    #: The CA of the server certificate, for graphgate's own clients (sidecar, health check).
    tls_ca_file: Path | None = None
    #: TLS ends at a load balancer in front of the service (production then needs no cert).
    tls_offloaded: bool = False
    valkey_ca_file: Path | None = None
    database_ca_file: Path | None = None

    # C12/C13: where secrets come from, and the key rings rotation maintains.
    secrets_source: SecretsSource = SecretsSource.ENV
    secrets_prefix: str | None = None
    secrets_endpoint_url: str | None = None
    secrets_components: tuple[str, ...] = DEFAULT_SECRET_COMPONENTS
    secrets_ttl_seconds: float = 3600.0
    jwt_keyring: tuple[KeyVersion, ...] = field(default=(), repr=False)
    operator_keyring: tuple[KeyVersion, ...] = field(default=(), repr=False)

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

    @property
    def tls_enabled(self) -> bool:
        """True when the gRPC listener serves TLS itself."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @property
    def secrets_base_id(self) -> str:
        """The base secret's name, ``graphgate/{env}``; components live under it."""
        if self.secrets_prefix:
            return self.secrets_prefix
        return "graphgate/prod" if self.is_production else "graphgate/dev"


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


# Observability parsers live with their package; imported lazily so that
# reading settings does not load prometheus-client and the OpenTelemetry SDK.
def _metrics_listen(raw: str) -> str | None:
    from graphgate.server.observability.options import parse_metrics_listen

    return parse_metrics_listen(raw)


def _otlp_endpoint(raw: str) -> str:
    from graphgate.server.observability.options import parse_otlp_endpoint

    return parse_otlp_endpoint(raw)


def _otlp_protocol(raw: str) -> str:
    from graphgate.server.observability.options import parse_otlp_protocol

    return parse_otlp_protocol(raw)


def _otlp_headers(raw: str) -> tuple[tuple[str, str], ...]:
    from graphgate.server.observability.options import parse_otlp_headers

    return parse_otlp_headers(raw)


def _sample_ratio(raw: str) -> float:
    from graphgate.server.observability.options import parse_sample_ratio

    return parse_sample_ratio(raw)


def _rate_limits(raw: str) -> str:
    from graphgate.server.services.rate_limits import parse_windows

    parse_windows(raw)
    return raw


def _file_path(raw: str) -> Path:
    # Only the shape is checked here; production_problems() checks the files.
    if not raw.strip():
        raise ValueError("expected a file path")
    return Path(raw.strip())


def _secret_prefix(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value or any(c.isspace() for c in value):
        raise ValueError("expected a secret name such as graphgate/prod")
    return value


def _components(raw: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in raw.split(",") if p.strip())
    bad = [n for n in names if not n.replace("-", "").replace("_", "").isalnum()]
    if bad:
        raise ValueError(f"component names are letters, digits, - and _: {bad!r}")
    return names


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_keyring(raw: str) -> tuple[KeyVersion, ...]:
    """A JSON list of ``{"key", "created_at", "activates_at"}``, stored newest first.

    Errors name the entry's position, never its key.
    """
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("expected a JSON list of keys") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("expected a non-empty JSON list of keys")
    ring = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ValueError(f"entry {number} needs a string 'key'")
        created = entry.get("created_at")
        activates = entry.get("activates_at", created)
        if not (_finite(created) and _finite(activates)):
            raise ValueError(f"entry {number} needs numeric 'created_at' and 'activates_at'")
        ring.append(KeyVersion(entry["key"], float(created), float(activates)))
    return tuple(sorted(ring, key=lambda k: k.created_at, reverse=True))


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
    "GRAPHGATE_CORS_ORIGINS": ("cors_origins", _keys),
    "GRAPHGATE_IDENTITY_HASH_KEY": ("identity_hash_key", str),
    "GRAPHGATE_METRICS_LISTEN": ("metrics_listen", _metrics_listen),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp_endpoint", _otlp_endpoint),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("otlp_protocol", _otlp_protocol),
    "OTEL_EXPORTER_OTLP_HEADERS": ("otlp_headers", _otlp_headers),
    "OTEL_EXPORTER_OTLP_CERTIFICATE": ("otlp_ca_file", _file_path),
    "GRAPHGATE_TRACE_SAMPLE_RATIO": ("trace_sample_ratio", _sample_ratio),
    "GRAPHGATE_MAX_MESSAGE_BYTES": ("max_message_bytes", _positive_int),
    "GRAPHGATE_MAX_CONCURRENT_RPCS": ("max_concurrent_rpcs", _positive_int),
    "GRAPHGATE_GRAPH_BUFFER_POOL_MIB": ("graph_buffer_pool_mib", _positive_int),
    "GRAPHGATE_GRAPH_WORKER_RSS_LIMIT_MIB": ("graph_worker_rss_limit_mib", _positive_int),
    "GRAPHGATE_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", _positive_float),
    "GRAPHGATE_TLS_CERT_FILE": ("tls_cert_file", _file_path),
    "GRAPHGATE_TLS_KEY_FILE": ("tls_key_file", _file_path),
    "GRAPHGATE_TLS_CLIENT_CA_FILE": ("tls_client_ca_file", _file_path),
    "GRAPHGATE_TLS_CA_FILE": ("tls_ca_file", _file_path),
    "GRAPHGATE_TLS_OFFLOADED": ("tls_offloaded", _bool),
    "GRAPHGATE_VALKEY_CA_FILE": ("valkey_ca_file", _file_path),
    "GRAPHGATE_DATABASE_CA_FILE": ("database_ca_file", _file_path),
    "GRAPHGATE_SECRETS_SOURCE": ("secrets_source", _enum(SecretsSource)),
    "GRAPHGATE_SECRETS_PREFIX": ("secrets_prefix", _secret_prefix),
    "GRAPHGATE_SECRETS_ENDPOINT_URL": ("secrets_endpoint_url", _url(("http", "https"))),
    "GRAPHGATE_SECRETS_COMPONENTS": ("secrets_components", _components),
    "GRAPHGATE_SECRETS_TTL_SECONDS": ("secrets_ttl_seconds", _positive_float),
    "GRAPHGATE_JWT_KEYRING": ("jwt_keyring", parse_keyring),
    "GRAPHGATE_OPERATOR_KEYRING": ("operator_keyring", parse_keyring),
}

#: Settings that choose where the other settings come from: only the process
#: environment may set them, never a secret (C12).
BOOTSTRAP_SETTINGS = frozenset(
    {
        "GRAPHGATE_ENV",
        "GRAPHGATE_SECRETS_SOURCE",
        "GRAPHGATE_SECRETS_PREFIX",
        "GRAPHGATE_SECRETS_ENDPOINT_URL",
        "GRAPHGATE_SECRETS_COMPONENTS",
        "GRAPHGATE_SECRETS_TTL_SECONDS",
    }
)

_FIELD_NAMES = {f.name for f in fields(Settings)}


#: Variables the ``graphgate`` client commands read (graphgate.clients), not
#: server settings: allowed beside the server's without being typos.
_CLIENT_NAMES = frozenset({"GRAPHGATE_URL", "GRAPHGATE_API_KEY"})


def setting_names() -> dict[str, str]:
    """Environment variable name -> field name, for docs and the CLI."""
    return {env: name for env, (name, _) in _SETTINGS.items()}


def parse_settings(environ: Mapping[str, str], **overrides: object) -> Settings:
    """Parse ``environ`` into :class:`Settings` without the start-up rules.

    For choosing where the rest of the settings come from (the secrets
    source, C12) and for tools that only need an address (the health
    check). Never start the service with it: :func:`load_settings` does
    the same parsing and then refuses what C21 refuses.

    Raises :class:`ConfigurationError` listing every unparsable value and
    every unknown ``GRAPHGATE_*`` name.
    """
    problems: list[str] = []
    values: dict[str, object] = {}
    for env_name, raw in environ.items():
        spec = _SETTINGS.get(env_name)
        if spec is None:
            if env_name.startswith("GRAPHGATE_") and env_name not in _CLIENT_NAMES:
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
    # The embedded servers and graph workers run in directories of their own:
    # a relative data dir would name another place for each of them.
    data_dir = values.get("data_dir", Settings.__dataclass_fields__["data_dir"].default)
    values["data_dir"] = Path(str(data_dir)).absolute()
    return Settings(**values)  # type: ignore[arg-type]


def load_settings(environ: Mapping[str, str], **overrides: object) -> Settings:
    """Build :class:`Settings` from ``environ`` (and keyword overrides, for the CLI).

    Raises :class:`ConfigurationError` listing every problem: unparsable values,
    unknown ``GRAPHGATE_*`` names (typos), and in production every rule of C21.
    """
    settings = parse_settings(environ, **overrides)
    problems = production_problems(settings) if settings.is_production else []
    problems += _consistency_problems(settings)
    if problems:
        raise ConfigurationError(problems)
    return settings


def _consistency_problems(settings: Settings) -> list[str]:
    """Rules for every environment (production adds its own, listed once)."""
    from graphgate.server.observability.options import configuration_problems

    problems = configuration_problems(settings, production=settings.is_production)
    if not settings.is_production:
        # In production, production_problems() words these two itself.
        if settings.jwt_secret_key is not None and len(settings.jwt_secret_key.encode()) < 32:
            problems.append("JWT_SECRET_KEY: must be at least 32 bytes (HS256)")
        problems += [
            f"GRAPHGATE_JWT_KEYRING: key {n} must be at least 32 bytes (HS256)"
            for n, k in enumerate(settings.jwt_keyring, start=1)
            if len(k.key.encode()) < 32
        ]
    if settings.graph_buffer_pool_mib < 16:
        problems.append("GRAPHGATE_GRAPH_BUFFER_POOL_MIB: at least 16")
    if settings.graph_worker_rss_limit_mib < 2 * settings.graph_buffer_pool_mib + 256:
        problems.append(
            "GRAPHGATE_GRAPH_WORKER_RSS_LIMIT_MIB: must be at least twice"
            " GRAPHGATE_GRAPH_BUFFER_POOL_MIB plus 256 (one full pool would restart the worker)"
        )
    if len(settings.s3_bucket) < 3:
        problems.append("GRAPHGATE_S3_BUCKET: bucket names need at least 3 characters")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        problems.append("GRAPHGATE_TLS_CERT_FILE and GRAPHGATE_TLS_KEY_FILE: set both or neither")
    if settings.tls_client_ca_file is not None and not settings.tls_enabled:
        problems.append(
            "GRAPHGATE_TLS_CLIENT_CA_FILE: client certificates need GRAPHGATE_TLS_CERT_FILE"
            " and GRAPHGATE_TLS_KEY_FILE"
        )
    if settings.valkey_url is not None and _valkey_tls_overrides(settings.valkey_url):
        problems.append(
            "VALKEY_URL: TLS options in the URL are refused (they override certificate"
            " checks); use GRAPHGATE_VALKEY_CA_FILE"
        )
    if settings.valkey_ca_file is not None and not _is_tls_valkey(settings.valkey_url):
        problems.append("GRAPHGATE_VALKEY_CA_FILE: needs a valkeys:// or rediss:// VALKEY_URL")
    ring = {k.key for k in settings.jwt_keyring}
    if ring and settings.jwt_secret_key and settings.jwt_secret_key not in ring:
        problems.append("JWT_SECRET_KEY: must be one of the keys in GRAPHGATE_JWT_KEYRING")
    if (
        settings.secrets_source is SecretsSource.AWS
        and not settings.aws_region
        and not settings.is_production  # production words it itself
    ):
        problems.append("AWS_REGION: required when GRAPHGATE_SECRETS_SOURCE is aws")
    return problems


def _valkey_tls_overrides(url: str) -> list[str]:
    # valkey-py lets URL query options win over keyword arguments, so
    # ?ssl_cert_reqs=none would switch verification off behind our back.
    return [k for k in parse_qs(urlsplit(url).query) if k.lower().startswith("ssl")]


def _is_tls_valkey(url: str | None) -> bool:
    return url is not None and url.split("://", 1)[0].lower() in {"valkeys", "rediss"}


def _database_sslmode(url: str) -> str | None:
    modes = parse_qs(urlsplit(url).query).get("sslmode")
    return modes[-1].lower() if modes else None


def _weak_secret_problem(name: str, secret: str) -> str | None:
    if len(secret.encode()) < 32:
        return f"{name}: shorter than 32 characters"
    if any(marker in secret.lower() for marker in _WEAK_SECRET_MARKERS):
        return f"{name}: looks like a development value"
    return None


def _fernet_problems(keys: tuple[str, ...]) -> list[str]:
    from cryptography.fernet import Fernet

    problems = []
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            # The position, never the value: this line ends up in logs.
            problems.append(
                f"BACKUP_ENCRYPTION_KEYS: key {number} of {len(keys)} is not a valid Fernet key"
            )
    return problems


def _file_problem(name: str, path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"{name}: {path} cannot be read ({exc.strerror or exc})"
    return None


def _tls_problems(settings: Settings) -> list[str]:
    """C10: the gRPC listener serves TLS unless it is explicitly offloaded."""
    if settings.tls_offloaded and not settings.tls_enabled:
        return []
    if not settings.tls_enabled:
        return [
            "GRAPHGATE_TLS_CERT_FILE: required in production (with GRAPHGATE_TLS_KEY_FILE),"
            " unless GRAPHGATE_TLS_OFFLOADED=true says a load balancer terminates TLS"
        ]
    files = {
        "GRAPHGATE_TLS_CERT_FILE": settings.tls_cert_file,
        "GRAPHGATE_TLS_KEY_FILE": settings.tls_key_file,
        "GRAPHGATE_TLS_CLIENT_CA_FILE": settings.tls_client_ca_file,
    }
    problems = [
        p for name, path in files.items() if path is not None and (p := _file_problem(name, path))
    ]
    if not problems:
        from graphgate.server.tls import certificate_problems

        problems += certificate_problems(settings)
    return problems


def _store_file_problems(settings: Settings) -> list[str]:
    files = {
        "GRAPHGATE_VALKEY_CA_FILE": settings.valkey_ca_file,
        "GRAPHGATE_DATABASE_CA_FILE": settings.database_ca_file,
        "GRAPHGATE_TLS_CA_FILE": settings.tls_ca_file,
    }
    return [
        p for name, path in files.items() if path is not None and (p := _file_problem(name, path))
    ]


def production_problems(settings: Settings) -> list[str]:
    """Every reason ``settings`` must not run in production (C21, C10), at once.

    The rules, one problem line each:

    * ``DATABASE_URL`` missing (embedded PostgreSQL would start) or without
      ``sslmode=require``, ``verify-ca`` or ``verify-full``;
    * ``VALKEY_URL`` missing (embedded Valkey would start) or not TLS
      (``valkeys://``/``rediss://``; ``unix://`` is local and allowed);
    * ``S3_ENDPOINT_URL`` set but not ``https://`` (unset means AWS S3 itself);
    * ``JWT_SECRET_KEY`` missing, shorter than 32 characters or looking like a
      development value; the same for every key of ``GRAPHGATE_JWT_KEYRING``,
      ``OPERATOR_API_KEY`` and ``GRAPHGATE_OPERATOR_KEYRING`` when set;
    * ``BACKUP_ENCRYPTION_KEYS`` missing, or a key that is not a Fernet key;
    * ``AWS_REGION`` missing;
    * CAPTCHA on without ``TURNSTILE_SECRET_KEY``;
    * no TLS certificate and key for the gRPC listener (unless
      ``GRAPHGATE_TLS_OFFLOADED``), or files that cannot be read, a key
      that does not match its certificate, an expired certificate;
    * a CA file setting naming a file that cannot be read.
    """
    problems = []
    if settings.database_url is None:
        problems.append("DATABASE_URL: required in production (embedded PostgreSQL refused)")
    elif _database_sslmode(settings.database_url) not in {"require", "verify-ca", "verify-full"}:
        problems.append("DATABASE_URL: production requires sslmode=require or verify-full")
    if settings.valkey_url is None:
        problems.append("VALKEY_URL: required in production (embedded Valkey refused)")
    elif not (_is_tls_valkey(settings.valkey_url) or settings.valkey_url.startswith("unix:")):
        problems.append("VALKEY_URL: production requires TLS (valkeys:// or rediss://)")
    if settings.s3_endpoint_url is not None and not settings.s3_endpoint_url.lower().startswith(
        "https://"
    ):
        problems.append("S3_ENDPOINT_URL: production requires https://")
    secret = settings.jwt_secret_key or ""
    if not secret:
        problems.append("JWT_SECRET_KEY: required in production")
    elif weak := _weak_secret_problem("JWT_SECRET_KEY", secret):
        problems.append(weak)
    for name, ring in (
        ("GRAPHGATE_JWT_KEYRING", settings.jwt_keyring),
        ("GRAPHGATE_OPERATOR_KEYRING", settings.operator_keyring),
    ):
        for number, version in enumerate(ring, start=1):
            if weak := _weak_secret_problem(f"{name}: key {number}", version.key):
                problems.append(weak)
    if settings.operator_api_key and (
        weak := _weak_secret_problem("OPERATOR_API_KEY", settings.operator_api_key)
    ):
        problems.append(weak)
    if not settings.backup_encryption_keys:
        problems.append("BACKUP_ENCRYPTION_KEYS: required in production")
    problems += _fernet_problems(settings.backup_encryption_keys)
    if not settings.aws_region:
        problems.append("AWS_REGION: required in production")
    if settings.captcha_enabled and not settings.turnstile_secret_key:
        problems.append("TURNSTILE_SECRET_KEY: required when CAPTCHA_ENABLED is on")
    problems += _tls_problems(settings)
    problems += _store_file_problems(settings)
    return problems
