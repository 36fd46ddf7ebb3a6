"""The ``graphgate`` command line (API.md, "Operator surface").

Server commands (``serve``, ``migrate``, ``gateway``) build the settings
object from the environment and hand it to the runner; nothing else in the
server reads the process environment.

Client commands (``login``, ``users``, ``keys``, ``graphs``, ``members``,
``query``, ``upload``) talk to a running server through the SDK
(:mod:`graphgate.clients`) and read only the client's names:
``GRAPHGATE_URL``, ``GRAPHGATE_API_KEY`` and the config file
(``~/.config/graphgate/config.toml`` or ``--config``; refused unless only its
owner can read it). ``users deactivate|activate|set-tier`` use the operator
key: ``OPERATOR_API_KEY``, or on a development install the key file the
server generated under ``GRAPHGATE_DATA_DIR``.

Errors are one line on stderr: ``graphgate: <message>``. Exit status: 0 done,
1 the server or a store refused or failed, 2 bad configuration or usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphgate.server.embedded import EmbeddedStoreError
from graphgate.server.errors import ConfigurationError, StoreUnavailable
from graphgate.server.settings import Settings, load_settings

if TYPE_CHECKING:
    from graphgate.clients import Client
    from graphgate.clients.config import ClientSettings
    from graphgate.clients.models import UploadProgress

#: Environment names only client commands read; settings validation never sees them.
CLIENT_ENVIRONMENT = ("GRAPHGATE_URL", "GRAPHGATE_API_KEY")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Audit events are bare JSON lines on their own stream, so log pipelines
    # (and the CloudWatch metric filters in infra/) can parse them as JSON.
    from graphgate.server.audit import AUDIT_LOGGER

    audit = logging.getLogger(AUDIT_LOGGER)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False


# --- server commands ------------------------------------------------------------------


_LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))


def _upstream(listen: str) -> str:
    """The address a local sidecar dials for a gRPC listen address (``0.0.0.0`` → loopback)."""
    host, _, port = listen.rpartition(":")
    if host in {"0.0.0.0", "", "*"}:  # noqa: S104 - mapping a wildcard to loopback
        host = "127.0.0.1"
    elif host in {"[::]", "::"}:
        host = "[::1]"
    return f"{host}:{port}"


def _gateway_options(settings: Settings) -> Any:
    from importlib import resources

    from graphgate.clients.gateway import GatewayOptions

    contract = resources.files("graphgate.v1") / "contract.binpb"
    s3 = settings.s3_endpoint_url
    return GatewayOptions(
        upstream=_upstream(settings.grpc_listen),
        cors_origins=settings.cors_origins,
        # The console sends files straight to the presigned S3 target.
        upload_origins=(s3.rstrip("/"),) if s3 else (),
        descriptor_set=Path(str(contract)) if contract.is_file() else None,
    )


def _http_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.http_listen.rpartition(":")
    return host.strip("[]"), int(port)


class _GatewayThread:
    """The REST sidecar beside ``serve``, on its own event loop in a thread.

    The gRPC runner owns the main thread, its loop and the signals; the
    sidecar only needs to start before it and stop after it.
    """

    def __init__(self, settings: Settings) -> None:
        self._options = _gateway_options(settings)
        self._host, self._port = _http_address(settings)
        self._listen = settings.http_listen
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="graphgate-gateway", daemon=True)

    def _run(self) -> None:
        from graphgate.clients.gateway import run_gateway

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(
                run_gateway(self._options, self._host, self._port, stop=self._stop, ready=ready)
            )
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            self._ready.set()
            await task

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the main thread by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        """Serve, or raise :class:`ConfigurationError` when the address is taken."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None or not self._thread.is_alive():
            raise ConfigurationError([f"cannot listen on {self._listen}: address in use?"])

    def stop(self) -> None:
        """Drain and stop the sidecar (its grace period at most)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from graphgate.server.runner import serve

    provider = getattr(args, "secrets_provider", None)
    if args.no_gateway:
        serve(settings, provider=provider)
        return
    # The in-process sidecar reaches the gRPC server over loopback and forwards
    # each browser's address as x-forwarded-for: trust loopback for that, or
    # every browser would share one brute-force and rate-limit identity.
    settings = dataclasses.replace(
        settings, trusted_proxies=(*settings.trusted_proxies, *_LOOPBACK)
    )
    # Started once the embedded S3 address is known: the console uploads to it.
    serve(settings, provider=provider, beside=_sidecar)


@contextmanager
def _sidecar(settings: Settings) -> Iterator[None]:
    gateway = _GatewayThread(settings)
    gateway.start()
    try:
        yield
    finally:
        gateway.stop()


def _secrets_rotate(settings: Settings, args: argparse.Namespace) -> None:
    from graphgate.server.secrets import RotationError, rotate_component, secrets_client
    from graphgate.server.settings import SecretsSource

    if settings.secrets_source is not SecretsSource.AWS:
        raise ConfigurationError(["secrets rotate needs GRAPHGATE_SECRETS_SOURCE=aws"])
    try:
        report = asyncio.run(
            rotate_component(
                args.component,
                settings=settings,
                client=secrets_client(settings),
                force=args.force,
                resume=args.resume,
            )
        )
    except RotationError as exc:
        print(f"graphgate: rotation failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(json.dumps(report.to_json(), indent=2))


def _gateway(settings: Settings, args: argparse.Namespace) -> None:
    from graphgate.clients.gateway import run_gateway

    options = _gateway_options(settings)
    if args.upstream:
        from dataclasses import replace

        options = replace(options, upstream=args.upstream)
    host, port = _http_address(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_gateway(options, host, port, stop=stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        raise ConfigurationError(
            [f"cannot listen on {settings.http_listen}: address in use?"]
        ) from exc


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    from graphgate.server.runner import check_data_dir, embedded_stores
    from graphgate.server.stores.postgres import migrate
    from graphgate.server.tls import postgres_ssl_context

    check_data_dir(settings.data_dir)
    with embedded_stores(settings, postgres_only=True) as resolved:
        assert resolved.database_url is not None  # noqa: S101 - resolved above
        applied = asyncio.run(migrate(resolved.database_url, ssl=postgres_ssl_context(settings)))
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))


# --- client commands: plumbing -----------------------------------------------------------


class _UsageError(Exception):
    """A client command cannot run as asked (exit 2)."""


def _client_settings(args: argparse.Namespace) -> ClientSettings:
    from graphgate.clients.config import load_client_settings

    return load_client_settings(os.environ, config_path=args.config, url=args.url)


@contextmanager
def _client(
    args: argparse.Namespace, *, prefer_session: bool = False, **overrides: Any
) -> Iterator[Client]:
    """A client for the command; a session it refreshed is saved back to the config file.

    ``prefer_session``: use the saved session even when an API key is
    configured (API keys cannot manage API keys).
    """
    from graphgate.clients import Client
    from graphgate.clients.config import update_config

    settings = _client_settings(args)
    credentials = settings.client_kwargs()
    if prefer_session and settings.token:
        credentials = {"token": settings.token}
    kwargs = {**credentials, **overrides}
    with Client(settings.url, timeout=args.timeout, **kwargs) as client:
        yield client
        session = client.session
        if (
            "token" in kwargs
            and session is not None
            and session.access_token != settings.token
            and settings.config_path is not None
        ):
            update_config(
                settings.config_path,
                session={"email": settings.email or "", "access_token": session.access_token},
            )


def _read_password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(prompt)
    else:
        raise _UsageError("no terminal to ask for the password: use --password-stdin")
    if not password:
        raise _UsageError("the password is empty")
    return password


def _operator_key() -> str:
    """``OPERATOR_API_KEY`` from the settings, else the development key file."""
    from graphgate.server.local_secrets import operator_key_path

    environ = {k: v for k, v in os.environ.items() if k not in CLIENT_ENVIRONMENT}
    settings = load_settings(environ)
    from graphgate.server.secrets import operator_key_to_present

    presented = operator_key_to_present(settings, time.time())
    if presented:
        return presented
    path = operator_key_path(settings.data_dir)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise _UsageError(
            f"no operator key: set OPERATOR_API_KEY, or run this where {path} exists "
            "(graphgate serve creates it in development)"
        ) from None
    except PermissionError:
        raise _UsageError(f"cannot read the operator key file {path}") from None


def _emit(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(_jsonable(data), indent=2, sort_keys=False))
    else:
        print(text())


def _jsonable(obj: Any) -> Any:
    import base64
    import dataclasses
    import decimal
    import enum
    import uuid
    from datetime import date, time

    from graphgate.clients.values import plain

    obj = plain(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if isinstance(obj, datetime | date | time):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, decimal.Decimal | uuid.UUID):
        return str(obj)
    return obj


def _cell(value: Any) -> str:
    from graphgate.clients.values import Node, Path, Relationship

    if value is None:
        return ""
    if isinstance(value, Node):
        return f"(:{value.label} {json.dumps(_jsonable(value.properties))})"
    if isinstance(value, Relationship):
        return f"[:{value.label} {json.dumps(_jsonable(value.properties))}]"
    if isinstance(value, Path):
        return f"<path of {len(value)} hops>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(_jsonable(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table; cells are cut to 60 characters to keep it readable."""
    text = [[_cell(c) for c in row] for row in rows]
    text = [[c if len(c) <= 60 else c[:57] + "..." for c in row] for row in text]
    widths = [len(h) for h in headers]
    for row in text:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in text]
    return "\n".join(s.rstrip() for s in out)


def _parse_param(text: str) -> tuple[str, Any]:
    """``name=value``: the value is JSON when it parses as JSON, else a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise _UsageError(f"--param expects NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


# --- client commands ----------------------------------------------------------------------


def _login(args: argparse.Namespace) -> None:
    from graphgate.clients import Client
    from graphgate.clients.config import default_config_path, update_config

    settings = _client_settings(args)
    email = args.email or input("Email: ").strip()
    password = _read_password(args)
    with Client(settings.url, timeout=args.timeout) as client:
        signed_in = client.auth.login(email, password)
    path = args.config or default_config_path()
    changes: dict[str, Any] = {
        "session": {"email": email, "access_token": signed_in.session.access_token}
    }
    if args.url:
        changes["url"] = args.url
    update_config(path, **changes)
    expires = signed_in.session.expires_at
    until = f" until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    print(f"signed in as {signed_in.user.email}; session saved to {path}{until}")
    print("tip: `graphgate keys create NAME --save` stores a long-lived API key instead")


def _users_create(args: argparse.Namespace) -> None:
    from graphgate.clients import Client

    password = _read_password(args, "New password: ")
    settings = _client_settings(args)
    with Client(settings.url, timeout=args.timeout) as client:
        signed_in = client.auth.register(args.email, password, args.name or args.email)
    _emit(
        args,
        signed_in.user,
        lambda: f"created user {signed_in.user.email} ({signed_in.user.user_id})",
    )


def _users_operator(args: argparse.Namespace) -> None:
    with _client(args, api_key=_operator_key(), token=None) as client:
        if args.users_command == "deactivate":
            user = client.operator.deactivate_user(args.email)
            done = "deactivated"
        elif args.users_command == "activate":
            user = client.operator.activate_user(args.email)
            done = "activated"
        else:
            user = client.operator.set_user_tier(args.email, args.tier)
            done = f"tier set to {user.tier} for"
    _emit(args, user, lambda: f"{done} {user.email} ({user.user_id})")


def _keys(args: argparse.Namespace) -> None:
    from graphgate.clients.config import update_config

    with _client(args, prefer_session=True) as client:
        command = args.keys_command
        if command == "list":
            keys = client.keys.list()
            _emit(
                args,
                keys,
                lambda: _table(
                    ["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED"],
                    [
                        [
                            k.api_key_id,
                            k.name,
                            k.display_prefix,
                            k.created_at,
                            k.last_used_at,
                            k.revoked,
                        ]
                        for k in keys
                    ],
                ),
            )
            return
        if command == "revoke":
            client.keys.revoke(args.api_key_id)
            print(f"revoked {args.api_key_id}")
            return
        if command == "create":
            expires = (
                datetime.now(UTC) + timedelta(days=args.expires_in_days)
                if args.expires_in_days
                else None
            )
            created = client.keys.create(
                args.name, description=args.description, expires_at=expires
            )
        else:
            created = client.keys.rotate(args.api_key_id)
    if args.save:
        path = _client_settings(args).config_path
        assert path is not None  # noqa: S101 - load_client_settings always sets it
        update_config(path, api_key=created.api_key)
    if args.json:
        print(json.dumps({"api_key": created.api_key, "key": _jsonable(created.key)}, indent=2))
        return
    if args.quiet:
        print(created.api_key)
        return
    print(f"API key {created.key.name} ({created.key.api_key_id}); the secret, shown once:")
    print(created.api_key)
    if args.save:
        print("saved to the config file; later commands use it", file=sys.stderr)


def _graphs(args: argparse.Namespace) -> None:
    command = args.graphs_command
    with _client(args) as client:
        if command == "create":
            schema = list(args.schema or [])
            if args.schema_file:
                schema += [s.strip() for s in args.schema_file.read_text().split(";") if s.strip()]
            graph = client.graphs.create(args.name, description=args.description, schema=schema)
            if args.quiet:
                print(graph.graph_id)
                return
            _emit(args, graph, lambda: f"created graph {graph.name}: {graph.graph_id}")
        elif command == "list":
            graphs = list(client.graphs.list())
            _emit(
                args,
                graphs,
                lambda: _table(
                    ["ID", "NAME", "ROLE", "CREATED"],
                    [[g.graph_id, g.name, g.role, g.created_at] for g in graphs],
                ),
            )
        elif command == "get":
            graph = client.graphs.get(args.graph_id)
            tables = client.graphs.schema(args.graph_id)
            _emit(
                args,
                {"graph": graph, "tables": tables},
                lambda: "\n".join(
                    [f"{graph.name} ({graph.graph_id}), your role: {graph.role}"]
                    + [
                        f"  {t.kind} {t.name}("
                        + ", ".join(f"{c.name} {c.type}" for c in t.columns)
                        + ")"
                        for t in tables
                    ]
                ),
            )
        else:
            if not args.yes:
                if not sys.stdin.isatty():
                    raise _UsageError("deleting a graph needs --yes when not on a terminal")
                answer = input(f"Delete graph {args.graph_id} and all its data? [y/N] ")
                if answer.strip().lower() not in {"y", "yes"}:
                    print("not deleted")
                    return
            client.graphs.delete(args.graph_id)
            print(f"deleted {args.graph_id}")


def _members(args: argparse.Namespace) -> None:
    command = args.members_command
    with _client(args) as client:
        members = client.graphs.members
        if command == "list":
            found = members.list(args.graph_id)
            _emit(
                args,
                found,
                lambda: _table(
                    ["USER ID", "EMAIL", "ROLE"], [[m.user_id, m.email, m.role] for m in found]
                ),
            )
        elif command == "remove":
            members.remove(args.graph_id, args.user_id)
            print(f"removed {args.user_id}")
        else:
            member = (
                members.add(args.graph_id, args.email, args.role)
                if command == "add"
                else members.update(args.graph_id, args.user_id, args.role)
            )
            _emit(args, member, lambda: f"{member.email} ({member.user_id}) is {member.role}")


def _query(args: argparse.Namespace) -> None:
    params = dict(_parse_param(p) for p in args.param or [])
    with _client(args) as client:
        result = client.query(
            args.graph_id, args.cypher, params, timeout=args.query_timeout, row_limit=args.row_limit
        )
    if args.json:
        print(
            json.dumps(
                {
                    "columns": result.column_names,
                    "rows": _jsonable(result.rows),
                    "row_count": result.row_count,
                    "truncated": result.truncated,
                    "query_class": result.query_class.value,
                },
                indent=2,
            )
        )
        return
    if result.columns:
        print(_table(result.column_names, result.rows))
    more = " (truncated: use a smaller result or the SDK's stream)" if result.truncated else ""
    plural = "" if result.row_count == 1 else "s"
    print(f"({result.row_count} row{plural}, {result.query_class.value}){more}", file=sys.stderr)


class _ProgressBar:
    """One line on stderr, redrawn in place on a terminal; phase lines otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._phase = ""

    def __call__(self, report: UploadProgress) -> None:
        if report.phase != self._phase:
            if self._tty and self._phase:
                sys.stderr.write("\n")
            self._phase = report.phase
            if not self._tty:
                print(f"{report.phase}...", file=sys.stderr)
        if self._tty:
            filled = int(report.fraction * 30)
            rows = f" {report.rows_loaded} rows" if report.phase != "upload" else ""
            sys.stderr.write(
                f"\r{report.phase:<8} [{'#' * filled}{'.' * (30 - filled)}] "
                f"{report.fraction:6.1%} {report.bytes_sent / 1e6:.1f}/"
                f"{report.total_bytes / 1e6:.1f} MB{rows}"
            )
            sys.stderr.flush()

    def done(self) -> None:
        if self._tty and self._phase:
            sys.stderr.write("\n")


def _upload(args: argparse.Namespace) -> None:
    bar = _ProgressBar()
    with _client(args) as client:
        try:
            upload = client.uploads.upload_file(
                args.graph_id, args.table, args.file, format=args.format, on_progress=bar
            )
        finally:
            bar.done()
    _emit(
        args,
        upload,
        lambda: (
            f"loaded {upload.row_count} rows into {upload.table_name} (upload {upload.upload_id})"
        ),
    )


# --- the parser ---------------------------------------------------------------------------------


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help="server URL (default: $GRAPHGATE_URL, the config file, or grpc://127.0.0.1:50051)",
    )
    common.add_argument(
        "--config", type=Path, help="config file (default: ~/.config/graphgate/config.toml)"
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "-q", "--quiet", action="store_true", help="print only the new object's id (for scripts)"
    )
    common.add_argument("--timeout", type=float, default=30.0, help="call deadline in seconds")
    return common


def _add_client_commands(commands: Any) -> None:
    common = _client_options()

    def command(name: str, run: Callable[[argparse.Namespace], None], **kwargs: Any) -> Any:
        parser = commands.add_parser(name, parents=[common], **kwargs)
        parser.set_defaults(client_run=run)
        return parser

    login = command("login", _login, help="sign in and save the session to the config file")
    login.add_argument("--email")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    users = commands.add_parser("users", help="create accounts; operator: deactivate, tiers")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = users_commands.add_parser("create", parents=[common], help="register an account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", help="display name (default: the email)")
    create.add_argument("--password-stdin", action="store_true")
    create.set_defaults(client_run=_users_create)
    for action, help_text in (
        ("deactivate", "end an account's sessions and keys"),
        ("activate", "let a deactivated account sign in again"),
    ):
        sub = users_commands.add_parser(action, parents=[common], help=f"operator: {help_text}")
        sub.add_argument("email")
        sub.set_defaults(client_run=_users_operator)
    tier = users_commands.add_parser("set-tier", parents=[common], help="operator: change a tier")
    tier.add_argument("email")
    tier.add_argument("tier", choices=["free", "pro", "enterprise"])
    tier.set_defaults(client_run=_users_operator)

    keys = commands.add_parser("keys", help="your API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_create = keys_commands.add_parser("create", parents=[common], help="make a key")
    key_create.add_argument("name")
    key_create.add_argument("--description", default="")
    key_create.add_argument("--expires-in-days", type=float)
    key_create.add_argument("--save", action="store_true", help="store it in the config file")
    keys_commands.add_parser("list", parents=[common], help="list your keys")
    revoke = keys_commands.add_parser("revoke", parents=[common], help="end a key now")
    revoke.add_argument("api_key_id")
    rotate = keys_commands.add_parser("rotate", parents=[common], help="replace a key's secret")
    rotate.add_argument("api_key_id")
    rotate.add_argument("--save", action="store_true", help="store it in the config file")
    for sub in keys_commands.choices.values():
        sub.set_defaults(client_run=_keys, save=False)

    graphs = commands.add_parser("graphs", help="your graphs")
    graphs_commands = graphs.add_subparsers(dest="graphs_command", required=True, metavar="ACTION")
    graph_create = graphs_commands.add_parser("create", parents=[common], help="make a graph")
    graph_create.add_argument("name")
    graph_create.add_argument("--description", default="")
    graph_create.add_argument(
        "--schema", action="append", metavar="DDL", help="a schema statement (repeatable)"
    )
    graph_create.add_argument("--schema-file", type=Path, help="statements separated by ';'")
    graphs_commands.add_parser("list", parents=[common], help="list your graphs")
    get = graphs_commands.add_parser("get", parents=[common], help="a graph and its schema")
    get.add_argument("graph_id")
    delete = graphs_commands.add_parser("delete", parents=[common], help="delete a graph")
    delete.add_argument("graph_id")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    for sub in graphs_commands.choices.values():
        sub.set_defaults(client_run=_graphs)

    members = commands.add_parser("members", help="who may use a graph")
    members_commands = members.add_subparsers(
        dest="members_command", required=True, metavar="ACTION"
    )
    roles = ["admin", "member", "viewer"]
    add = members_commands.add_parser("add", parents=[common], help="give a user a role")
    add.add_argument("graph_id")
    add.add_argument("email")
    add.add_argument("role", choices=roles)
    listing = members_commands.add_parser("list", parents=[common], help="list members")
    listing.add_argument("graph_id")
    update = members_commands.add_parser("update", parents=[common], help="change a role")
    update.add_argument("graph_id")
    update.add_argument("user_id")
    update.add_argument("role", choices=roles)
    remove = members_commands.add_parser("remove", parents=[common], help="remove a member")
    remove.add_argument("graph_id")
    remove.add_argument("user_id")
    for sub in members_commands.choices.values():
        sub.set_defaults(client_run=_members)

    query = command("query", _query, help="run one Cypher statement")
    query.add_argument("graph_id")
    query.add_argument("cypher")
    query.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a $parameter; VALUE is JSON when it parses as JSON, else text",
    )
    query.add_argument("--row-limit", type=int, default=0)
    query.add_argument("--query-timeout", type=float, help="engine time limit in seconds")

    upload = command("upload", _upload, help="load a CSV, Parquet or JSON file into a table")
    upload.add_argument("graph_id")
    upload.add_argument("table")
    upload.add_argument("file", type=Path)
    upload.add_argument("--format", choices=["csv", "parquet", "json"])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``graphgate`` command."""
    parser = argparse.ArgumentParser(
        prog="graphgate",
        description="Multi-tenant LadybugDB graphs behind gRPC contracts.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gRPC server and the REST sidecar")
    serve.add_argument("--no-gateway", action="store_true", help="run without the REST sidecar")
    serve.set_defaults(run=_serve)
    gateway = commands.add_parser("gateway", help="run the REST sidecar alone")
    gateway.add_argument("--upstream", help="gRPC address (default: GRAPHGATE_GRPC_LISTEN)")
    gateway.set_defaults(run=_gateway)
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(run=_migrate)
    secrets = commands.add_parser("secrets", help="rotate secrets kept in AWS Secrets Manager")
    secrets_commands = secrets.add_subparsers(dest="secrets_command", required=True)
    rotate = secrets_commands.add_parser(
        "rotate", help="rotate one component secret (createSecret, setSecret, testSecret, finish)"
    )
    rotate.add_argument("component", choices=["jwt", "operator", "valkey", "database"])
    rotate.add_argument("--force", action="store_true", help="rotate even if rotated recently")
    rotate.add_argument("--resume", action="store_true", help="finish an interrupted rotation")
    rotate.set_defaults(run=_secrets_rotate)
    _add_client_commands(commands)
    return parser


def _run_client(args: argparse.Namespace) -> int:
    from graphgate.clients import GraphgateError

    try:
        args.client_run(args)
    except GraphgateError as exc:
        print(f"graphgate: {exc}", file=sys.stderr)
        return 2 if exc.code is None and exc.reason.startswith("CONFIG") else 1
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"graphgate: configuration error: {problem}", file=sys.stderr)
        return 2
    except (_UsageError, ValueError, OSError) as exc:
        print(f"graphgate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphgate`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "client_run", None) is not None:
        return _run_client(args)
    from graphgate.server.secrets import load_configuration

    environ = {k: v for k, v in os.environ.items() if k not in CLIENT_ENVIRONMENT}
    try:
        settings, provider = load_configuration(environ)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"graphgate: configuration error: {problem}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    args.secrets_provider = provider
    try:
        args.run(settings, args)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"graphgate: {problem}", file=sys.stderr)
        return 2
    except EmbeddedStoreError as exc:
        print(f"graphgate: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"graphgate: store unavailable: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
