"""The client's IP address, from the gRPC peer and trusted proxies' X-Forwarded-For.

Security: ``X-Forwarded-For`` is text the client can write. Anyone may send
``X-Forwarded-For: 1.2.3.4`` to borrow an innocent address (and have it blocked
by the brute-force guard) or to escape their own block. So the header is read
only when the connection itself comes from a configured trusted proxy, and
then it is walked from the right: each trusted proxy *appends* the address it
received the request from, so the right-most entries are written by our own
proxies and everything left of the first untrusted address is the client's own
text. The answer is the right-most address that is not itself a trusted proxy
(the reasoning of go-grpc-middleware's ``realip`` package and of MDN's
"selecting an IP address"). A malformed entry ends the walk: nothing left of
it can be attributed to a proxy we trust, so the nearest address we can still
vouch for (the last trusted hop reached) is returned instead of guessing.

Cost: string parsing only, O(number of header entries); no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Returned for a Unix-socket peer (a local process; there is no IP to give).
UNIX_PEER = "unix"
#: Returned for a peer string this module does not understand.
UNKNOWN_PEER = "unknown"

# More entries than any real proxy chain has; past this the header is an
# attacker's padding and walking it further only costs CPU.
_MAX_FORWARDED_ENTRIES = 32


def parse_ip(text: str) -> IPAddress | None:
    """Parse one address as it appears in a peer or X-Forwarded-For entry.

    Accepts a bare address, ``1.2.3.4:port``, ``[v6]`` and ``[v6]:port``; drops
    an IPv6 zone id and turns IPv4-mapped IPv6 (``::ffff:1.2.3.4``) into IPv4 so
    one client has one spelling. Returns ``None`` for anything else; never raises.
    """
    text = text.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        # IPv4 with a port; a bare IPv6 address has at least two colons.
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
        text = host
    text = text.split("%", 1)[0]  # zone id: meaningless off the host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, trusted_proxies: Sequence[IPNetwork]) -> bool:
    return any(
        address.version == network.version and address in network for network in trusted_proxies
    )


def _parse_peer(peer: str) -> IPAddress | str:
    """The peer's address, or :data:`UNIX_PEER` / :data:`UNKNOWN_PEER`."""
    # grpcio spells peers ``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678`` (some
    # versions percent-encode the brackets) and ``unix:/path`` /
    # ``unix-abstract:name``.
    scheme, _, rest = peer.partition(":")
    if scheme in ("unix", "unix-abstract"):
        return UNIX_PEER
    if scheme in ("ipv4", "ipv6"):
        address = parse_ip(unquote(rest))
        if address is not None:
            return address
    return UNKNOWN_PEER


def client_ip(
    peer: str,
    forwarded_for: str | None,
    trusted_proxies: Sequence[IPNetwork],
    *,
    trust_unix_peers: bool = False,
) -> str:
    """Return the address of the client that made this call, as text.

    ``peer`` is ``context.peer()`` of the gRPC call. ``forwarded_for`` is the
    ``x-forwarded-for`` metadata value; when the key appears several times, join
    the values with ``,`` in arrival order before calling. ``trusted_proxies``
    are the networks of proxies that append to that header (e.g. the REST
    sidecar on loopback, the load balancer's subnet). With
    ``trust_unix_peers`` a Unix-socket peer (a sidecar on the same host) counts
    as a trusted proxy.

    The header is used only when the peer is trusted, walked from the right,
    skipping trusted proxies; see the module's Security paragraph. Returns the
    compressed textual address (IPv4-mapped IPv6 as IPv4), or
    :data:`UNIX_PEER` / :data:`UNKNOWN_PEER` when the peer has no IP and the
    header gives none. Never raises; cost is string parsing only.
    """
    peer_address = _parse_peer(peer)
    if isinstance(peer_address, str):
        peer_trusted = peer_address == UNIX_PEER and trust_unix_peers
    else:
        peer_trusted = _is_trusted(peer_address, trusted_proxies)
    if not peer_trusted or not forwarded_for:
        return str(peer_address)

    nearest: IPAddress | str = peer_address
    entries = forwarded_for.split(",")[-_MAX_FORWARDED_ENTRIES:]
    for entry in reversed(entries):
        if not entry.strip():
            continue  # ", ," is formatting noise, not data
        address = parse_ip(entry)
        if address is None:
            break  # see the module docstring: stop, do not skip
        if not _is_trusted(address, trusted_proxies):
            return str(address)
        nearest = address
    return str(nearest)
