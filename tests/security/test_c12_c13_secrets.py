"""C12 and C13: settings from Secrets Manager with a TTL cache; rotation without downtime.

Secrets Manager is moto's server mode on 127.0.0.1 (a local endpoint over
HTTP, never the cloud). PostgreSQL is the SCRAM + TLS server of
``test_c10_tls`` (pgserver's own uses trust on a socket, which proves no
password); Valkey is the session's embedded server. Time is a fake clock
injected into the providers and the rotation, so "after the TTL" takes no
hour. Each rotation runs while a loop of requests keeps going, and the test
asserts that not one failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import boto3
import grpc
import pytest
import valkey.asyncio as valkey_asyncio
import valkey.exceptions
from grpc import aio

from graphgate.server.audit import AuditLog
from graphgate.server.embedded import EmbeddedEndpoints
from graphgate.server.errors import ConfigurationError
from graphgate.server.lifecycle import Stores
from graphgate.server.secrets import (
    KeyringCheck,
    RotationError,
    SecretsClient,
    SecretsProvider,
    handler,
    in_use,
    load_configuration,
    operator_key_to_present,
    rotate_component,
    scram,
    store_credentials_follower,
    valkey_url_and_credentials,
)
from graphgate.server.secrets.keyring import new_key
from graphgate.server.secrets.rotation import deployment_settings
from graphgate.server.settings import Settings
from graphgate.server.tls import postgres_ssl_context
from graphgate.v1 import auth_pb2, auth_pb2_grpc
from tests.conftest import FakeClock, custom_server
from tests.security.test_c10_tls import PasswordPostgres, password_postgres  # noqa: F401
from tests.support import bearer, code_of, register

pytestmark = pytest.mark.security

TTL = 3600.0


# --- a local Secrets Manager ----------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(moto_endpoint: str) -> SecretsClient:
    assert moto_endpoint.startswith("http://127.0.0.1:")  # never the real cloud
    made: SecretsClient = boto3.client(
        "secretsmanager",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # moto accepts any key
    )
    return made


def new_prefix() -> str:
    return f"graphgate/t{uuid.uuid4().hex[:10]}"


def put(client: SecretsClient, name: str, value: dict[str, Any]) -> None:
    """Create ``name`` or store a new AWSCURRENT version of it."""
    text = json.dumps(value)
    try:
        client.put_secret_value(SecretId=name, SecretString=text)
    except client.exceptions.ResourceNotFoundException:  # type: ignore[attr-defined]
        client.create_secret(Name=name, SecretString=text)  # type: ignore[attr-defined]


def current(client: SecretsClient, name: str) -> dict[str, Any]:
    # The stage is explicit: moto's default read lags behind stage moves.
    answer = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    value: dict[str, Any] = json.loads(answer["SecretString"])
    return value


def provider_for(
    client: SecretsClient, prefix: str, components: tuple[str, ...], clock: FakeClock
) -> SecretsProvider:
    provider = SecretsProvider(
        client, environ={}, base_id=prefix, components=components, ttl_seconds=TTL, clock=clock
    )
    provider.load()
    return provider


class Load:
    """A loop of requests running beside a rotation; counts successes, keeps failures."""

    def __init__(self, *steps: Callable[[], Awaitable[object]]) -> None:
        self._steps = steps
        self.ok = 0
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        while not self._stop.is_set():
            for step in self._steps:
                try:
                    await step()
                except Exception as exc:  # every failure counts, whatever it is
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    self.ok += 1
            await asyncio.sleep(0.005)

    async def more(self, count: int = 4) -> None:
        """Wait until ``count`` more requests succeeded (each phase is really exercised)."""
        target = self.ok + count
        deadline = time.monotonic() + 20.0
        while self.ok < target and not self.failures:
            assert time.monotonic() < deadline, "the load loop stalled"
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        await self.more()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


# --- C12: settings from Secrets Manager -------------------------------------------


async def test_c12_settings_merge_environment_base_and_component_secrets(
    client: SecretsClient, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C12: environment < base < component; the endpoint comes from the settings."""
    prefix = new_prefix()
    put(client, prefix, {"JWT_ISSUER": "from-base", "DATABASE_URL": "postgresql://base/db"})
    put(client, f"{prefix}/database", {"DATABASE_URL": "postgresql://component/db"})
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": new_key(), "JWT_EXPIRY_HOURS": 0.25})
    environ = {
        "GRAPHGATE_SECRETS_SOURCE": "aws",
        "GRAPHGATE_SECRETS_PREFIX": prefix,
        "GRAPHGATE_SECRETS_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": "us-east-1",
        "JWT_ISSUER": "from-environment",
        "JWT_AUDIENCE": "from-environment",
    }
    # boto3's default credential chain, as in production (moto takes any key).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    settings, provider = await asyncio.to_thread(load_configuration, environ)
    assert provider is not None
    assert settings.jwt_issuer == "from-base"
    assert settings.jwt_audience == "from-environment"
    assert settings.database_url == "postgresql://component/db"
    assert settings.jwt_expiry_seconds == 900
    assert provider.secret_ids[:2] == (prefix, f"{prefix}/database")


async def test_c12_rotated_value_is_used_after_the_ttl_and_not_before(
    client: SecretsClient,
) -> None:
    """C12: a changed secret takes effect after the 1 h TTL, in the same process."""
    prefix = new_prefix()
    put(client, prefix, {})
    put(client, f"{prefix}/database", {"DATABASE_URL": "postgresql://before/db"})
    clock = FakeClock()
    provider = provider_for(client, prefix, ("database", "jwt"), clock)
    seen: list[frozenset[str]] = []
    provider.on_change(lambda settings, changed: seen.append(changed))
    put(client, f"{prefix}/database", {"DATABASE_URL": "postgresql://after/db"})

    clock.advance(TTL - 1)
    assert await provider.arefresh() == frozenset()
    assert provider.settings.database_url == "postgresql://before/db"
    clock.advance(1)
    assert await provider.arefresh() == {"DATABASE_URL"}
    assert provider.settings.database_url == "postgresql://after/db"
    assert seen == [{"DATABASE_URL"}]
    assert await provider.arefresh() == frozenset()  # cached again for a TTL


async def test_c12_a_secret_may_not_set_bootstrap_or_unknown_names(
    client: SecretsClient,
) -> None:
    """C12: a secret cannot switch production off or redirect the source; typos are named."""
    prefix = new_prefix()
    leaked = "postgresql://user:hunter2@db/gg"
    put(client, prefix, {"GRAPHGATE_ENV": "development", "DATABSE_URL": leaked, "_note": "ok"})
    provider = SecretsProvider(client, environ={}, base_id=prefix, components=())
    with pytest.raises(ConfigurationError) as refused:
        provider.load()
    assert refused.value.problems == [
        f"secret {prefix}: GRAPHGATE_ENV may only come from the environment",
        f"secret {prefix}: DATABSE_URL is not a setting",
    ]
    assert "hunter2" not in str(refused.value)


async def test_c12_failed_refresh_keeps_the_working_settings(client: SecretsClient) -> None:
    """C12: a broken rotated value is refused loudly; the service keeps what works."""
    prefix = new_prefix()
    good = new_key()
    put(client, prefix, {})
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": good})
    clock = FakeClock()
    provider = provider_for(client, prefix, ("jwt",), clock)
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": "too-short"})
    clock.advance(TTL)
    assert await provider.arefresh() == frozenset()
    assert provider.settings.jwt_secret_key == good
    assert provider.failures == 1
    fixed = new_key()
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": fixed})
    assert await provider.arefresh() == {"JWT_SECRET_KEY"}  # retried at once, not in an hour
    assert provider.settings.jwt_secret_key == fixed


def test_c12_missing_base_secret_stops_the_start(client: SecretsClient) -> None:
    environ = {
        "GRAPHGATE_SECRETS_SOURCE": "aws",
        "GRAPHGATE_SECRETS_PREFIX": new_prefix(),
        "AWS_REGION": "us-east-1",
    }
    with pytest.raises(ConfigurationError) as refused:
        load_configuration(environ, client=client)
    (problem,) = refused.value.problems
    assert problem.startswith("GRAPHGATE_SECRETS_SOURCE=aws: secret graphgate/t")
    assert problem.endswith("not found")


# --- C13: the JWT signing key, on two real replicas ------------------------------


@contextlib.asynccontextmanager
async def replica(
    provider: SecretsProvider,
    settings: Settings,
    stores: Stores,
    audit_log: AuditLog,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[aio.Channel]:
    """A server whose token keys follow ``provider``, wired as ``serve`` wires it."""
    async with (
        custom_server(settings, stores, audit_log, jwt_keys=provider.current_jwt_keys) as (
            server,
            _,
        ),
        aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield channel


async def test_c13_jwt_key_rotates_across_replicas_without_a_failed_request(
    client: SecretsClient,
    settings: Settings,
    stores: Stores,
    audit_log: AuditLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """C13: tokens signed on one replica keep verifying on the other at every stage,
    while the replicas' caches expire at different times; the old key verifies until
    it is retired after the longest token lifetime."""
    prefix = new_prefix()
    put(client, prefix, {})
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": new_key()})
    clock = FakeClock()
    first = provider_for(client, prefix, ("jwt",), clock)
    clock.advance(3000)  # the second replica read the secret later: its cache expires later
    second = provider_for(client, prefix, ("jwt",), clock)
    old_key = first.current_jwt_keys()[0]
    async with (
        replica(first, settings, stores, audit_log, monkeypatch) as a,
        replica(second, settings, stores, audit_log, monkeypatch) as b,
    ):
        account = await register(a)
        login = auth_pb2.LoginRequest(email=account.email, password=account.password)

        async def across(signer: aio.Channel, verifier: aio.Channel) -> None:
            token = (await auth_pb2_grpc.AuthServiceStub(signer).Login(login)).session.access_token
            await auth_pb2_grpc.AuthServiceStub(verifier).GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=bearer(token)
            )

        async with Load(lambda: across(a, b), lambda: across(b, a)) as load:
            signed_before = (await auth_pb2_grpc.AuthServiceStub(a).Login(login)).session
            clock.advance(1000)
            report = await rotate_component(
                "jwt", settings=deployment_settings(client, prefix, {}), client=client, clock=clock
            )
            assert report.steps == ("createSecret", "setSecret", "testSecret", "finishSecret")
            new = in_use(deployment_settings(client, prefix, {}).jwt_keyring, clock() + TTL + 301)
            # Replica A's cache has expired: it now accepts the new key, still signs with the old.
            assert await first.arefresh() == {"GRAPHGATE_JWT_KEYRING"}
            assert first.current_jwt_keys()[0] == old_key
            assert new.key in first.current_jwt_keys()
            await load.more()
            # Replica B is still on its cache: both keep signing with the old key.
            assert await second.arefresh() == frozenset()
            await load.more()
            clock.advance(2700)
            assert await second.arefresh() == {"GRAPHGATE_JWT_KEYRING"}
            await load.more()
            clock.advance(TTL + 300 - 2700)  # the new key activates on both replicas
            assert first.current_jwt_keys()[0] == new.key
            assert second.current_jwt_keys()[0] == new.key
            await load.more()
            # A token signed with the old key still verifies after the switch.
            await auth_pb2_grpc.AuthServiceStub(b).GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=bearer(signed_before.access_token)
            )
        assert load.failures == []
        assert load.ok >= 20
        print(f"jwt rotation: {load.ok} requests during it, none failed")

        # The next rotation, a day and the token lifetime later, retires the old key.
        clock.advance(300 + 86_400 + 1)
        await rotate_component(
            "jwt", settings=deployment_settings(client, prefix, {}), client=client, clock=clock
        )
        await second.arefresh(force=True)
        assert old_key not in second.current_jwt_keys()
        with pytest.raises(grpc.RpcError) as refused:
            await auth_pb2_grpc.AuthServiceStub(b).GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=bearer(signed_before.access_token)
            )
        assert code_of(refused.value) == grpc.StatusCode.UNAUTHENTICATED


# --- C13: the operator API key -----------------------------------------------------


async def test_c13_operator_key_rotates_without_a_refused_operator(
    client: SecretsClient,
) -> None:
    """C13: the operator presents the key in use (read fresh each time); every replica,
    fresh or on its cache, accepts it before, during and after the rotation."""
    prefix = new_prefix()
    put(client, prefix, {})
    put(client, f"{prefix}/operator", {"OPERATOR_API_KEY": new_key()})
    clock = FakeClock()
    replicas = [provider_for(client, prefix, ("operator",), clock)]
    clock.advance(3000)
    replicas.append(provider_for(client, prefix, ("operator",), clock))
    operator = provider_for(client, prefix, ("operator",), clock)
    old_key = operator.settings.operator_api_key

    async def operator_call() -> None:
        await operator.arefresh(force=True)  # the CLI reads AWSCURRENT when it runs
        presented = operator_key_to_present(operator.settings, clock())
        for number, replica_provider in enumerate(replicas):
            if not KeyringCheck(replica_provider.current_operator_keys()).matches(presented):
                raise AssertionError(f"replica {number} refused the operator key")

    async with Load(operator_call) as load:
        clock.advance(1000)
        await rotate_component(
            "operator", settings=deployment_settings(client, prefix, {}), client=client, clock=clock
        )
        await operator.arefresh(force=True)
        new = in_use(operator.settings.operator_keyring, clock() + TTL + 301).key
        # Had the new key been used at once, the replica on its cache would refuse it:
        assert not KeyringCheck(replicas[1].current_operator_keys()).matches(new)
        await load.more()
        await replicas[0].arefresh()
        await load.more()
        clock.advance(2700)
        await replicas[1].arefresh()
        await load.more()
        clock.advance(TTL + 300 - 2700)
        await load.more()
        assert in_use(operator.settings.operator_keyring, clock()).key == new
        assert KeyringCheck(replicas[1].current_operator_keys()).matches(old_key)
    assert load.failures == []
    print(f"operator rotation: {load.ok} operator calls during it, none refused")


# --- C13: the Valkey password --------------------------------------------------------


async def _valkey_round_trip(url: str, user: str) -> None:
    connection = valkey_asyncio.Valkey.from_url(url, socket_timeout=5)
    try:
        await connection.set(f"ggrot:{user}:probe", "1")
        assert await connection.get(f"ggrot:{user}:probe") == b"1"
    finally:
        await connection.aclose()


async def test_c13_valkey_password_rotates_under_load_without_a_failed_request(
    client: SecretsClient, endpoints: EmbeddedEndpoints
) -> None:
    """C13: the ACL user accepts the cached and the new password during and after the
    rotation; the password before them stops working at the next rotation only."""
    assert endpoints.valkey_url is not None
    admin = valkey_asyncio.Valkey.from_url(endpoints.valkey_url)
    user, first_password = f"ggrot{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(24)
    await admin.execute_command(
        "ACL", "SETUSER", user, "on", f">{first_password}", f"~ggrot:{user}:*",
        "+@connection", "+get", "+set", "+acl|whoami",
    )  # fmt: skip
    host_port = endpoints.valkey_url.rsplit("@", 1)[1]
    first_url = f"valkey://{user}:{first_password}@{host_port}"
    prefix = new_prefix()
    put(client, prefix, {})
    put(client, f"{prefix}/valkey", {"VALKEY_URL": first_url})
    put(client, f"{prefix}/valkey-admin", {"VALKEY_ADMIN_URL": endpoints.valkey_url})
    clock = FakeClock()
    fresh = provider_for(client, prefix, ("valkey",), clock)
    # A running replica's client: it follows the secret without a restart.
    bare_url, credentials = valkey_url_and_credentials(first_url)
    live = valkey_asyncio.Valkey.from_url(
        bare_url, socket_timeout=5, credential_provider=credentials
    )
    fresh.on_change(
        store_credentials_follower(postgres=None, valkey=credentials, started=fresh.settings)
    )

    async def fresh_replica() -> None:
        await fresh.arefresh(force=True)
        assert fresh.settings.valkey_url is not None
        await _valkey_round_trip(fresh.settings.valkey_url, user)
        await live.connection_pool.disconnect()  # every call on a new connection
        await live.ping()

    try:
        async with Load(lambda: _valkey_round_trip(first_url, user), fresh_replica) as load:
            settings = deployment_settings(client, prefix, {})
            report = await rotate_component("valkey", settings=settings, client=client, clock=clock)
            await load.more()
        assert load.failures == []
        assert any("no ACL file" in note for note in report.notes)
        second_url = current(client, f"{prefix}/valkey")["VALKEY_URL"]
        assert second_url != first_url
        await _valkey_round_trip(second_url, user)
        await _valkey_round_trip(first_url, user)  # still valid: replicas may cache it

        # Too soon for the next one: a replica may not have seen the current version yet.
        with pytest.raises(RotationError, match="younger than the cache TTL"):
            await rotate_component("valkey", settings=settings, client=client, clock=time.time)
        clock.advance(TTL + 301)
        await rotate_component("valkey", settings=settings, client=client, clock=clock)
        with pytest.raises(valkey.exceptions.AuthenticationError):
            await _valkey_round_trip(first_url, user)
        await _valkey_round_trip(second_url, user)
        await _valkey_round_trip(current(client, f"{prefix}/valkey")["VALKEY_URL"], user)
        # The live client started with the first password and never restarted.
        await fresh_replica()
        print(f"valkey rotation: {load.ok} requests during it, none failed")
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()
        await live.aclose()


# --- C13: the PostgreSQL password (alternating users) -------------------------------


async def _create_roles(pg: PasswordPostgres, *roles: tuple[str, str]) -> None:
    admin = await pg.admin()
    try:
        await admin.execute(
            "DO $$ BEGIN CREATE ROLE gg_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL;"
            " END $$"
        )
        await admin.execute("CREATE TABLE IF NOT EXISTS rot_check (n int)")
        await admin.execute("ALTER TABLE rot_check OWNER TO gg_app")
        for role, password in roles:
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
            await admin.execute(
                f"CREATE ROLE {role} LOGIN IN ROLE gg_app PASSWORD '{scram.verifier(password)}'"
            )
    finally:
        await admin.close()


async def _pg_query(url: str, ca_file: Any) -> str:
    context = postgres_ssl_context(Settings(database_url=url, database_ca_file=ca_file))
    connection = await asyncpg.connect(url, ssl=context, timeout=10)
    try:
        await connection.fetchval("SELECT count(*) FROM rot_check")
        user: str = await connection.fetchval("SELECT current_user")
        return user
    finally:
        await connection.close()


async def test_c13_postgres_password_rotates_under_load_without_a_failed_request(
    client: SecretsClient,
    password_postgres: PasswordPostgres,  # noqa: F811 - the fixture imported above
) -> None:
    """C13: new connections with the cached URL and with the fresh one both succeed
    throughout; the other role's password really changed (SCRAM over TLS)."""
    pg = password_postgres
    passwords = {"gg_a": secrets.token_urlsafe(24), "gg_b": secrets.token_urlsafe(24)}
    await _create_roles(pg, *passwords.items())
    first_url = pg.url("gg_a", passwords["gg_a"])
    prefix = new_prefix()
    put(client, prefix, {"GRAPHGATE_DATABASE_CA_FILE": str(pg.ca_file)})
    put(
        client,
        f"{prefix}/database",
        {"DATABASE_URL": first_url, "_DATABASE_ALTERNATE_URL": pg.url("gg_b", passwords["gg_b"])},
    )
    clock = FakeClock()
    fresh = provider_for(client, prefix, ("database",), clock)
    # A running replica's pool: it follows the secret without a restart.
    pool = await asyncpg.create_pool(
        first_url, ssl=postgres_ssl_context(fresh.settings), min_size=1, max_size=2
    )
    fresh.on_change(store_credentials_follower(postgres=pool, valkey=None, started=fresh.settings))

    async def fresh_replica() -> str:
        await fresh.arefresh(force=True)
        assert fresh.settings.database_url is not None
        await _pg_query(fresh.settings.database_url, pg.ca_file)
        await pool.expire_connections()  # every call on a new connection
        user: str = await pool.fetchval("SELECT current_user")
        return user

    settings = deployment_settings(client, prefix, {})
    async with Load(lambda: _pg_query(first_url, pg.ca_file), fresh_replica) as load:
        report = await rotate_component("database", settings=settings, client=client, clock=clock)
        await load.more()
    assert load.failures == []
    print(f"postgres rotation: {load.ok} requests during it, none failed")
    assert report.notes == (
        "gg_b: password changed; gg_a keeps its password until the next rotation",
    )
    second_url = current(client, f"{prefix}/database")["DATABASE_URL"]
    assert await _pg_query(second_url, pg.ca_file) == "gg_b"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await _pg_query(pg.url("gg_b", passwords["gg_b"]), pg.ca_file)
    admin = await pg.admin()
    try:
        stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = 'gg_b'")
    finally:
        await admin.close()
    new_password = second_url.split(":", 2)[2].split("@", 1)[0]
    assert scram.matches(stored, new_password)

    # The next rotation (after the TTL) gives gg_a a new password: the first URL ends.
    clock.advance(TTL + 301)
    await rotate_component("database", settings=settings, client=client, clock=clock)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await _pg_query(first_url, pg.ca_file)
    assert await _pg_query(second_url, pg.ca_file) == "gg_b"
    third_url = current(client, f"{prefix}/database")["DATABASE_URL"]
    assert await _pg_query(third_url, pg.ca_file) == "gg_a"
    # The pool opened with the first URL, whose password is gone, still connects.
    assert await fresh_replica() == "gg_a"
    await pool.close()


async def test_c13_failed_rotation_leaves_the_current_secret_in_force(
    client: SecretsClient,
    password_postgres: PasswordPostgres,  # noqa: F811 - the fixture imported above
) -> None:
    """C13 runbook: a failed set step keeps AWSCURRENT; the next rotation waits until
    the unfinished one is cleared."""
    pg = password_postgres
    await _create_roles(pg, ("gg_c", "pw-c-0123456789"), ("gg_d", "pw-d-0123456789"))
    prefix = new_prefix()
    put(client, prefix, {"GRAPHGATE_DATABASE_CA_FILE": str(pg.ca_file)})
    document = {
        "DATABASE_URL": pg.url("gg_c", "pw-c-0123456789"),
        "_DATABASE_ALTERNATE_URL": pg.url("gg_d", "not-the-password"),
    }
    name = f"{prefix}/database"
    put(client, name, document)
    settings = deployment_settings(client, prefix, {})
    with pytest.raises(RotationError, match="gg_d refuses its last password"):
        await rotate_component("database", settings=settings, client=client)
    assert current(client, name) == document
    with pytest.raises(RotationError, match="is unfinished"):
        await rotate_component("database", settings=settings, client=client)
    # The runbook: put the alternate role's real password in the secret, then resume.
    fixed = {**document, "_DATABASE_ALTERNATE_URL": pg.url("gg_d", "pw-d-0123456789")}
    put(client, name, fixed)
    report = await rotate_component("database", settings=settings, client=client, resume=True)
    assert report.steps[-1] == "finishSecret"
    assert current(client, name)["_DATABASE_ALTERNATE_URL"] == document["DATABASE_URL"]
    assert await _pg_query(current(client, name)["DATABASE_URL"], pg.ca_file) == "gg_d"


# --- C13: the Lambda handler ----------------------------------------------------------


async def test_c13_handler_runs_secrets_managers_four_steps(client: SecretsClient) -> None:
    """C13: the step events Secrets Manager sends, one by one, rotate the secret."""
    prefix = new_prefix()
    put(client, prefix, {})
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": new_key()})
    arn = client.describe_secret(SecretId=f"{prefix}/jwt")["ARN"]
    token = str(uuid.uuid4())
    clock = FakeClock()
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        event = {"SecretId": arn, "ClientRequestToken": token, "Step": step}
        answer = await asyncio.to_thread(
            handler, event, None, client=client, environ={}, clock=clock
        )
        assert answer["status"] == "done"
    labels = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert labels[token] == ["AWSCURRENT"]
    assert len(current(client, f"{prefix}/jwt")["GRAPHGATE_JWT_KEYRING"]) == 2
    # A repeated finish is harmless; an unknown version is refused.
    event = {"SecretId": arn, "ClientRequestToken": token, "Step": "finishSecret"}
    assert (await asyncio.to_thread(handler, event, None, client=client, environ={}))[
        "status"
    ] == "already current"
    event = {"SecretId": arn, "ClientRequestToken": str(uuid.uuid4()), "Step": "setSecret"}
    with pytest.raises(RotationError, match="no stage for rotation"):
        await asyncio.to_thread(handler, event, None, client=client, environ={})


async def test_c13_monthly_schedule_rotates_every_component_under_its_prefix(
    client: SecretsClient,
) -> None:
    """C13: the schedule's event (infra/cloudformation/secrets-rotation.yaml) rotates each
    rotatable component, reports the rest, and fails at the end if one failed."""
    prefix = new_prefix()
    put(client, prefix, {})
    put(client, f"{prefix}/jwt", {"JWT_SECRET_KEY": new_key()})
    put(client, f"{prefix}/operator", {"OPERATOR_API_KEY": new_key()})
    put(client, f"{prefix}/captcha", {"TURNSTILE_SECRET_KEY": "x" * 40})
    event = {
        "source": "graphgate.rotation-schedule",
        "action": "rotate-all",
        "secret_prefix": prefix,
    }
    summary = await asyncio.to_thread(handler, event, None, client=client, environ={})
    assert [r["component"] for r in summary["rotated"]] == ["jwt", "operator"]
    assert summary["skipped"] == ["captcha"]
    assert summary["failed"] == {}
    # A database secret that cannot rotate fails the run, after the others rotated.
    put(client, f"{prefix}/database", {"DATABASE_URL": "postgresql://u:p@db/gg"})
    before = current(client, f"{prefix}/jwt")
    with pytest.raises(RotationError, match="failed for database"):
        await asyncio.to_thread(
            handler, event, None, client=client, environ={}, clock=lambda: time.time() + 2 * TTL
        )
    assert current(client, f"{prefix}/jwt") != before
    with pytest.raises(RotationError, match="unrecognised event"):
        await asyncio.to_thread(handler, {"source": "aws.events"}, None, client=client, environ={})
