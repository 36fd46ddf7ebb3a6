"""TLS for the gRPC listener, graphgate's own gRPC clients, Valkey and PostgreSQL (C10).

Every function here turns settings into the credentials object a library
wants; none reads the environment.

Security:

* **gRPC listener.** :func:`server_credentials` serves the certificate and key
  files of the settings; with ``GRAPHGATE_TLS_CLIENT_CA_FILE`` it *requires*
  a client certificate issued by that CA (mTLS), and a client without one, or
  with one from another CA, fails the handshake. grpcio exposes no
  minimum-version knob: gRPC core (BoringSSL) itself refuses anything older
  than TLS 1.2 and negotiates TLS 1.2 or 1.3. ``tests/security/test_c10_tls.py``
  proves it with a real TLS 1.1 handshake that the same probe completes
  against a TLS 1.1 server. A plaintext client is refused (the handshake
  never completes).
* **Certificates renew without a restart.** Credentials are dynamic: before
  each new connection gRPC asks :class:`CertificateFiles` for changes, which
  compares the files' identity (inode, size, mtime) and re-reads them only
  when they changed. A new pair is loaded only if the key matches the
  certificate, so a half-written renewal keeps the old pair serving.
* **Valkey.** :func:`valkey_tls_kwargs` for ``valkeys://`` URLs: certificate
  required, host name checked (valkey-py's default is *not* to check it),
  TLS 1.2 minimum, optional private CA. URL ``ssl_*`` query options are
  refused by the settings (valkey-py lets them override these arguments).
* **PostgreSQL.** :func:`postgres_ssl_context` builds the ``ssl`` argument for
  asyncpg from ``sslmode`` and ``GRAPHGATE_DATABASE_CA_FILE``: with a CA file
  the server certificate is always verified; TLS 1.2 minimum.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
import threading
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import grpc

from graphgate.server.settings import Settings

_log = logging.getLogger("graphgate.tls")

#: Every TLS client and server context we build refuses older protocols.
MINIMUM_TLS = ssl.TLSVersion.TLSv1_2

_FileId = tuple[int, int, int] | None


def _file_id(path: Path | None) -> _FileId:
    if path is None:
        return None
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _check_pair(cert_file: Path, key_file: Path) -> None:
    """Raise :class:`ssl.SSLError` (or OSError) unless the key matches the certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)


class CertificateFiles:
    """The listener's certificate, key and client CA, re-read when they change.

    :meth:`fetch` is gRPC's certificate-configuration fetcher: it runs in a
    gRPC core thread before every new connection's handshake, so it only
    stats three files unless one changed, and it never raises (an exception
    there would fail the handshake of a client that did nothing wrong).
    """

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Path | None) -> None:
        self._paths = (cert_file, key_file, client_ca_file)
        self._lock = threading.Lock()
        self._seen: tuple[_FileId, ...] = ()
        self.reloads = 0
        self.initial = self._load()

    def _identity(self) -> tuple[_FileId, ...]:
        return tuple(_file_id(p) for p in self._paths)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert_file, key_file, ca_file = self._paths
        seen = self._identity()
        _check_pair(cert_file, key_file)
        configuration = grpc.ssl_server_certificate_configuration(
            [(key_file.read_bytes(), cert_file.read_bytes())],
            root_certificates=ca_file.read_bytes() if ca_file else None,
        )
        self._seen = seen
        return configuration

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed, else ``None`` (keep serving)."""
        try:
            with self._lock:
                if self._identity() == self._seen:
                    return None
                configuration = self._load()
                self.reloads += 1
        except (OSError, ssl.SSLError, ValueError) as exc:
            # Mid-renewal (a new certificate before its key): keep the pair
            # that works; the next connection looks again.
            _log.warning("TLS certificate files changed but cannot be loaded yet: %s", exc)
            return None
        _log.info("TLS certificate reloaded from %s", self._paths[0])
        return configuration


def server_credentials(
    settings: Settings, *, files: CertificateFiles | None = None
) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``, or ``None`` when TLS is not configured.

    ``files`` lets a caller keep the watcher (e.g. to read ``reloads``).
    Raises ``OSError``/``ssl.SSLError`` when the files cannot be used: start-up
    must fail rather than listen without TLS.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    watcher = files or CertificateFiles(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    )
    fetcher = cast(Any, watcher.fetch)  # the stubs omit that None means "no change"
    return grpc.dynamic_ssl_server_credentials(
        watcher.initial,
        fetcher,
        require_client_authentication=settings.tls_client_ca_file is not None,
    )


def channel_credentials(
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials for a gRPC client: trust ``ca_file`` (system roots when
    ``None``), and present ``cert_file``/``key_file`` to an mTLS server."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes() if ca_file else None,
        private_key=key_file.read_bytes() if key_file else None,
        certificate_chain=cert_file.read_bytes() if cert_file else None,
    )


def internal_channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """Credentials for graphgate's own clients of its listener (sidecar, health
    check), or ``None`` when the listener is plaintext.

    Trusts ``GRAPHGATE_TLS_CA_FILE`` (system roots when unset); under mTLS it
    presents the server's own certificate, which then needs the ``clientAuth``
    extended key usage besides ``serverAuth``.
    """
    if not settings.tls_enabled:
        return None
    mutual = settings.tls_client_ca_file is not None
    return channel_credentials(
        ca_file=settings.tls_ca_file,
        cert_file=settings.tls_cert_file if mutual else None,
        key_file=settings.tls_key_file if mutual else None,
    )


def valkey_tls_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``valkey.asyncio.Valkey.from_url(settings.valkey_url, ...)``.

    Empty for plaintext URLs (development, or ``unix://``); for ``valkeys://``
    and ``rediss://``: certificate required, host name checked, TLS 1.2+,
    and ``GRAPHGATE_VALKEY_CA_FILE`` as the trust anchor when set.
    """
    url = settings.valkey_url or ""
    if url.split("://", 1)[0].lower() not in {"valkeys", "rediss"}:
        return {}
    if any(k.lower().startswith("ssl") for k in parse_qs(urlsplit(url).query)):
        # Defence in depth: the settings loader refuses these already.
        raise ValueError("VALKEY_URL must not carry ssl_* options")
    kwargs: dict[str, Any] = {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_min_version": MINIMUM_TLS,
    }
    if settings.valkey_ca_file is not None:
        kwargs["ssl_ca_certs"] = str(settings.valkey_ca_file)
    return kwargs


def postgres_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The ``ssl`` argument for ``asyncpg.connect``/``create_pool``, or ``None``.

    * a CA file (``GRAPHGATE_DATABASE_CA_FILE``): verify against it, host
      name too unless ``sslmode=verify-ca`` (as libpq does with a root CA);
    * ``sslmode=verify-full``/``verify-ca`` without a CA file: system roots;
    * ``sslmode=require`` without a CA file: encrypted, not verified (what
      ``require`` means; production accepts it, ``verify-full`` is better);
    * otherwise ``None``: asyncpg follows the URL (development).
    """
    url = settings.database_url or ""
    modes = parse_qs(urlsplit(url).query).get("sslmode")
    mode = modes[-1].lower() if modes else None
    if settings.database_ca_file is None and mode not in {"require", "verify-ca", "verify-full"}:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.database_ca_file) if settings.database_ca_file else None
    )
    context.minimum_version = MINIMUM_TLS
    if settings.database_ca_file is None and mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = mode != "verify-ca"
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def certificate_problems(settings: Settings, *, now: datetime.datetime | None = None) -> list[str]:
    """Why the listener's certificate files cannot serve (C21 start-up check).

    Checks that the key matches the certificate, that the certificate is
    within its validity period, and that the client CA file holds a
    certificate. Assumes the files are readable (checked before).
    """
    from cryptography import x509

    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return []
    problems = []
    try:
        _check_pair(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        problems.append(
            f"GRAPHGATE_TLS_KEY_FILE: not a key, or not the key of GRAPHGATE_TLS_CERT_FILE ({exc})"
        )
    moment = now or datetime.datetime.now(datetime.UTC)
    try:
        leaf = x509.load_pem_x509_certificate(settings.tls_cert_file.read_bytes())
    except ValueError:
        problems.append("GRAPHGATE_TLS_CERT_FILE: not a PEM certificate")
    else:
        if not leaf.not_valid_before_utc <= moment <= leaf.not_valid_after_utc:
            problems.append(
                "GRAPHGATE_TLS_CERT_FILE: certificate not valid now (valid "
                f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
            )
    if settings.tls_client_ca_file is not None:
        try:
            x509.load_pem_x509_certificates(settings.tls_client_ca_file.read_bytes())
        except ValueError:
            problems.append("GRAPHGATE_TLS_CLIENT_CA_FILE: not a PEM certificate bundle")
    return problems
