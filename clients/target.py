"""Where a client connects, and whether over TLS.

``url`` forms:

- ``grpcs://host[:port]`` or ``https://host[:port]``: TLS (port 443 by default);
- ``grpc://host[:port]`` or ``http://host[:port]``: plaintext (port 50051 by default);
- ``host:port``: plaintext for a loopback host (a laptop's ``graphgate serve``),
  TLS for anything else, so credentials never cross a network in the clear
  unless asked for with ``tls=False`` or a ``grpc://`` URL.

``tls`` overrides the scheme: ``True`` (system roots), ``False`` (plaintext),
a path to a PEM bundle of trusted roots (a private CA), or ready
``grpc.ChannelCredentials`` (client certificates and the like).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

#: What ``tls=`` accepts.
TlsOption = bool | str | os.PathLike[str] | grpc.ChannelCredentials | None

DEFAULT_URL = "grpc://127.0.0.1:50051"
_PLAIN_SCHEMES = {"grpc": 50051, "http": 50051}
_TLS_SCHEMES = {"grpcs": 443, "https": 443}


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved address and its channel credentials (None for plaintext)."""

    address: str
    credentials: grpc.ChannelCredentials | None

    @property
    def secure(self) -> bool:
        """True for a TLS channel."""
        return self.credentials is not None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_target(url: str, tls: TlsOption = None) -> Target:
    """Parse ``url`` and decide TLS (see the module docstring).

    Raises :class:`ValueError` for an unknown scheme or a URL without a host.
    """
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _PLAIN_SCHEMES and scheme not in _TLS_SCHEMES:
            raise ValueError(f"unsupported URL scheme {scheme!r} (use grpc:// or grpcs://)")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        default_port = _TLS_SCHEMES.get(scheme) or _PLAIN_SCHEMES[scheme]
        host, port = parts.hostname, parts.port or default_port
        secure_by_scheme = scheme in _TLS_SCHEMES
    else:
        host, sep, port_text = url.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise ValueError(
                f"expected grpc://HOST:PORT, grpcs://HOST[:PORT] or HOST:PORT, got {url!r}"
            )
        host, port = host.strip("[]"), int(port_text)
        secure_by_scheme = not _is_loopback(host)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Target(address, _credentials(tls, secure_by_scheme))


def _credentials(tls: TlsOption, secure_by_scheme: bool) -> grpc.ChannelCredentials | None:
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    if isinstance(tls, str | os.PathLike):
        return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())
    if tls is True or (tls is None and secure_by_scheme):
        return grpc.ssl_channel_credentials()
    return None
