"""C10: TLS in transit - the gRPC listener, Valkey and PostgreSQL, over real sockets.

Each test makes its own certificate authority with ``cryptography`` in a
temporary directory. The gRPC tests run a plain ``grpc.aio`` server with
graphgate's :func:`server_credentials` and the health service (the same call
``GraphgateServer.start`` makes once wired). Valkey is the session's
embedded server behind a TLS-terminating proxy (the embedded binary has no
TLS built in); PostgreSQL is a server of this module's own, TLS on and
password (SCRAM) authentication over TCP, which the rotation tests reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest
import valkey.asyncio as valkey_asyncio
import valkey.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from graphgate.server.embedded import EmbeddedEndpoints
from graphgate.server.settings import Settings
from graphgate.server.tls import (
    CertificateFiles,
    channel_credentials,
    internal_channel_credentials,
    postgres_ssl_context,
    server_credentials,
    valkey_tls_kwargs,
)
from tests.support import code_of

pytestmark = pytest.mark.security

# --- a certificate authority of the test's own -------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Issued:
    """A certificate and its key, written to ``cert`` and ``key``."""

    cert: Path
    key: Path


class Authority:
    """A throw-away CA writing PEM files under ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / f"{name}-ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        label: str,
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        server: bool = True,
        client: bool = False,
        days: float = 1.0,
    ) -> Issued:
        """A leaf certificate for ``hosts`` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(label))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        issued = Issued(
            self.directory / f"{self.name}-{label}.pem", self.directory / f"{self.name}-{label}.key"
        )
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_pem_key(key))
        issued.key.chmod(0o600)
        return issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Authority]:
    directory = tmp_path_factory.mktemp("pki")
    return {name: Authority(directory, name) for name in ("good", "rogue", "clients")}


# --- a gRPC server with graphgate's credentials --------------------------------


@contextlib.asynccontextmanager
async def tls_server(
    settings: Settings, *, files: CertificateFiles | None = None
) -> AsyncIterator[int]:
    """A grpc.aio server with the health service on ``server_credentials(settings)``."""
    credentials = server_credentials(settings, files=files)
    assert credentials is not None
    server = aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


def tls_settings(issued: Issued, client_ca: Path | None = None, **changes: object) -> Settings:
    return dataclasses.replace(
        Settings(),
        tls_cert_file=issued.cert,
        tls_key_file=issued.key,
        tls_client_ca_file=client_ca,
        **changes,  # type: ignore[arg-type]
    )


async def health_check(channel: aio.Channel) -> grpc.StatusCode:
    """OK when the health service answered SERVING, else the failure's code."""
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    except grpc.RpcError as exc:
        return code_of(exc)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


async def secure_check(port: int, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    async with aio.secure_channel(f"localhost:{port}", credentials) as channel:
        return await health_check(channel)


async def test_c10_plaintext_client_is_refused_and_tls_client_served(
    pki: dict[str, Authority],
) -> None:
    """C10: with TLS on, a plaintext client gets nothing; a client trusting the CA is served."""
    settings = tls_settings(pki["good"].issue("server"))
    async with tls_server(settings) as port:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            assert await health_check(plain) == grpc.StatusCode.UNAVAILABLE
        good = channel_credentials(ca_file=pki["good"].ca_file)
        assert await secure_check(port, good) == grpc.StatusCode.OK
        # A client that trusts another CA refuses the server.
        rogue = channel_credentials(ca_file=pki["rogue"].ca_file)
        assert await secure_check(port, rogue) == grpc.StatusCode.UNAVAILABLE


async def test_c10_mtls_requires_a_client_certificate_from_the_client_ca(
    pki: dict[str, Authority],
) -> None:
    """C10: with a client CA set, no certificate or one from another CA is refused."""
    settings = tls_settings(pki["good"].issue("server"), client_ca=pki["clients"].ca_file)
    trusted = pki["clients"].issue("internal-caller", server=False, client=True)
    foreign = pki["rogue"].issue("intruder", server=False, client=True)
    ca = pki["good"].ca_file
    async with tls_server(settings) as port:
        assert await secure_check(port, channel_credentials(ca_file=ca)) != grpc.StatusCode.OK
        refused = channel_credentials(ca_file=ca, cert_file=foreign.cert, key_file=foreign.key)
        assert await secure_check(port, refused) == grpc.StatusCode.UNAVAILABLE
        accepted = channel_credentials(ca_file=ca, cert_file=trusted.cert, key_file=trusted.key)
        assert await secure_check(port, accepted) == grpc.StatusCode.OK


async def test_c10_internal_clients_use_the_servers_identity_under_mtls(
    pki: dict[str, Authority],
) -> None:
    """C10: the sidecar/health check credentials work against an mTLS listener."""
    both = pki["good"].issue("server-and-client", client=True)
    settings = tls_settings(both, client_ca=pki["good"].ca_file, tls_ca_file=pki["good"].ca_file)
    credentials = internal_channel_credentials(settings)
    assert credentials is not None
    async with tls_server(settings) as port:
        assert await secure_check(port, credentials) == grpc.StatusCode.OK
    assert internal_channel_credentials(Settings()) is None


def _handshake(port: int, version: ssl.TLSVersion, ca_file: Path) -> str:
    """Attempt a TLS handshake at exactly ``version``; the negotiated version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_file)
    # Let the probe itself offer old protocols (OpenSSL 3 hides them by default).
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is deprecated: the point
        context.minimum_version = version
        context.maximum_version = version
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def _tls11_server(issued: Issued) -> tuple[int, threading.Thread]:
    """A Python TLS 1.1-only server: proves the probe can really speak TLS 1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        with listener:
            connection, _ = listener.accept()
            with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True):
                pass

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    return port, thread


async def test_c10_tls_1_1_is_refused_1_2_and_1_3_accepted(pki: dict[str, Authority]) -> None:
    """C10: TLS 1.2 minimum. gRPC core (BoringSSL) enforces it; grpcio has no knob for it."""
    issued = pki["good"].issue("server")
    ca = pki["good"].ca_file
    control_port, thread = _tls11_server(issued)
    assert await asyncio.to_thread(_handshake, control_port, ssl.TLSVersion.TLSv1_1, ca) == (
        "TLSv1.1"
    )
    thread.join(5)
    async with tls_server(tls_settings(issued)) as port:
        with pytest.raises((ssl.SSLError, OSError)):
            await asyncio.to_thread(_handshake, port, ssl.TLSVersion.TLSv1_1, ca)
        for version, name in (
            (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
            (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
        ):
            assert await asyncio.to_thread(_handshake, port, version, ca) == name


async def test_c10_renewed_certificate_is_served_without_restart(
    pki: dict[str, Authority], tmp_path: Path
) -> None:
    """C10: replacing the certificate files takes effect for new connections, no restart."""
    live = Issued(tmp_path / "live.pem", tmp_path / "live.key")
    first = pki["good"].issue("before")
    shutil.copy(first.cert, live.cert)
    shutil.copy(first.key, live.key)
    settings = tls_settings(live)
    files = CertificateFiles(live.cert, live.key, None)
    async with tls_server(settings, files=files) as port:
        assert await secure_check(port, channel_credentials(ca_file=pki["good"].ca_file)) == (
            grpc.StatusCode.OK
        )
        renewed = pki["rogue"].issue("after")
        # A half-done renewal (certificate before key) keeps the old pair serving.
        shutil.copy(renewed.cert, live.cert)
        assert files.fetch() is None
        shutil.copy(renewed.key, live.key)
        assert await secure_check(port, channel_credentials(ca_file=pki["rogue"].ca_file)) == (
            grpc.StatusCode.OK
        )
        assert await secure_check(port, channel_credentials(ca_file=pki["good"].ca_file)) == (
            grpc.StatusCode.UNAVAILABLE
        )
    assert files.reloads == 1


# --- Valkey over TLS: the real embedded Valkey behind a TLS terminator -------------


@contextlib.asynccontextmanager
async def tls_terminator(issued: Issued, upstream_port: int) -> AsyncIterator[int]:
    """TLS on a loopback port, forwarding plaintext to the real Valkey."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _tls_url(plain_url: str, port: int, host: str = "localhost") -> str:
    password = plain_url.split("://:", 1)[1].split("@", 1)[0]
    return f"valkeys://:{password}@{host}:{port}/0"


async def _ping(url: str, ca_file: Path) -> bool:
    settings = Settings(valkey_url=url, valkey_ca_file=ca_file)
    client = valkey_asyncio.Valkey.from_url(url, socket_timeout=5, **valkey_tls_kwargs(settings))
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


async def test_c10_valkey_over_tls_verifies_the_certificate_and_host(
    pki: dict[str, Authority], endpoints: EmbeddedEndpoints
) -> None:
    """C10: valkeys:// works with the right CA; another CA or a wrong host name is refused."""
    assert endpoints.valkey_url is not None
    upstream = int(endpoints.valkey_url.rsplit(":", 1)[1].split("/", 1)[0])
    good = pki["good"]
    async with tls_terminator(good.issue("valkey"), upstream) as port:
        url = _tls_url(endpoints.valkey_url, port)
        assert await _ping(url, good.ca_file)
        with pytest.raises(valkey.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await _ping(url, pki["rogue"].ca_file)
    # A certificate from the right CA for another host: valkey-py alone would accept it.
    async with tls_terminator(good.issue("elsewhere", hosts=("cache.example",)), upstream) as port:
        with pytest.raises(valkey.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await _ping(_tls_url(endpoints.valkey_url, port), good.ca_file)


def test_c10_valkey_kwargs_require_verification() -> None:
    """C10: the client arguments switch verification and host checks on, TLS 1.2+."""
    kwargs = valkey_tls_kwargs(Settings(valkey_url="valkeys://:pw@cache.example:6379/0"))
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    assert kwargs["ssl_min_version"] == ssl.TLSVersion.TLSv1_2
    assert valkey_tls_kwargs(Settings(valkey_url="valkey://:pw@127.0.0.1:6379/0")) == {}


# --- PostgreSQL with TLS and password authentication over TCP ----------------------
#
# pgserver's PostgreSQL is built without SSL ("SSL is not supported by this
# build"), so TLS is terminated by a small front that speaks PostgreSQL's own
# TLS negotiation (SSLRequest, then the handshake) and forwards to the real
# server on loopback, as pgbouncer or a cloud proxy would. The server itself
# accepts only SCRAM passwords on TCP.

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PasswordPostgres:
    """A real PostgreSQL (SCRAM on TCP) reached through a TLS front on ``port``."""

    pgdata: Path
    port: int
    server_port: int
    ca_file: Path

    def url(self, user: str, password: str, mode: str = "verify-full") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/postgres?sslmode={mode}"

    async def admin(self) -> asyncpg.Connection:
        """A superuser connection over the Unix socket (trust; 0700 directory)."""
        connection: asyncpg.Connection = await asyncpg.connect(
            host=str(self.pgdata), port=self.server_port, user="postgres", database="postgres"
        )
        return connection


def _pg_bin(name: str) -> str:
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _postgres_tls_front(issued: Issued, upstream_port: int) -> asyncio.Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await reader.readexactly(8) != _SSL_REQUEST:
                writer.close()  # TLS only: a plaintext start-up message ends here
                return
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(context)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _start_postgres(root: Path, user: str | None) -> tuple[list[str], int]:
    """initdb and start a server in ``root``; the pg_ctl command line and the port."""
    root.chmod(0o755)
    pgdata = root / "data"
    pgdata.mkdir(mode=0o700)
    if user is not None:
        shutil.chown(pgdata, user, user)
    subprocess.run(
        [_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "utf8"],
        check=True, capture_output=True, user=user, timeout=60,
    )  # fmt: skip
    port = _free_port()
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{pgdata}'\npassword_encryption = 'scram-sha-256'\n"
        )
    (pgdata / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    ctl = [_pg_bin("pg_ctl"), "-D", str(pgdata), "-w", "-l", str(pgdata / "log")]
    subprocess.run([*ctl, "start"], check=True, capture_output=True, user=user, timeout=60)
    return ctl, port


def _stop_postgres(root: Path, ctl: list[str], user: str | None) -> None:
    subprocess.run([*ctl, "-m", "immediate", "stop"], check=False, capture_output=True,
                   user=user, timeout=60)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def password_postgres(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PasswordPostgres]:
    """Started once per session from pgserver's binaries (about 2 s)."""
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root; pgserver has its own user
        _pg_bin("initdb")  # imports pgserver quietly
        from pgserver.utils import ensure_user_exists

        user = "pgserver"
        ensure_user_exists(user)
    root = Path(tempfile.mkdtemp(prefix="gg-pg-"))
    authority = Authority(tmp_path_factory.mktemp("pg-pki"), "pg")
    ctl, port = await asyncio.to_thread(_start_postgres, root, user)
    front = await _postgres_tls_front(authority.issue("server", hosts=("127.0.0.1",)), port)
    try:
        yield PasswordPostgres(
            root / "data", front.sockets[0].getsockname()[1], port, authority.ca_file
        )
    finally:
        front.close()
        await asyncio.to_thread(_stop_postgres, root, ctl, user)


async def test_c10_postgres_tls_context_verifies_the_server(
    password_postgres: PasswordPostgres, pki: dict[str, Authority]
) -> None:
    """C10: the asyncpg context graphgate builds verifies the server and requires TLS 1.2+."""
    from graphgate.server.secrets import scram

    admin = await password_postgres.admin()
    try:
        await admin.execute("DROP ROLE IF EXISTS c10_probe")
        await admin.execute(f"CREATE ROLE c10_probe LOGIN PASSWORD '{scram.verifier('pw-c10')}'")
    finally:
        await admin.close()
    url = password_postgres.url("c10_probe", "pw-c10")
    good = Settings(database_url=url, database_ca_file=password_postgres.ca_file)
    context = postgres_ssl_context(good)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    connection = await asyncpg.connect(url, ssl=context, timeout=10)
    try:
        assert await connection.fetchval("SELECT current_user") == "c10_probe"
    finally:
        await connection.close()
    rogue = postgres_ssl_context(dataclasses.replace(good, database_ca_file=pki["rogue"].ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(url, ssl=rogue, timeout=10)
    # verify-full checks the host name: the certificate names 127.0.0.1 only.
    renamed = url.replace("127.0.0.1", "localhost")
    wrong_host = postgres_ssl_context(dataclasses.replace(good, database_url=renamed))
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        await asyncpg.connect(renamed, ssl=wrong_host, timeout=10)
    # verify-ca checks the chain only; require without a CA file only encrypts.
    verify_ca = postgres_ssl_context(
        dataclasses.replace(good, database_url=url.replace("verify-full", "verify-ca"))
    )
    assert verify_ca is not None
    assert not verify_ca.check_hostname
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED
    require = postgres_ssl_context(Settings(database_url=url.replace("verify-full", "require")))
    assert require is not None
    assert require.verify_mode == ssl.CERT_NONE
    assert postgres_ssl_context(Settings(database_url=url.split("?")[0])) is None
