"""C6: the client IP comes from the peer; X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from graphgate.server.services.client_ip import UNIX_PEER, UNKNOWN_PEER, client_ip, parse_ip

TRUSTED = [
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("127.0.0.1/32"),
    ipaddress.ip_network("fd00::/8"),
]


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:203.0.113.7:5678", "203.0.113.7"),
        ("ipv6:[2001:db8::1]:5678", "2001:db8::1"),
        ("ipv6:%5B2001:db8::1%5D:5678", "2001:db8::1"),
        ("ipv6:[::ffff:203.0.113.7]:443", "203.0.113.7"),
        ("ipv6:[fe80::1%25eth0]:80", "fe80::1"),
        ("unix:/run/graphgate.sock", UNIX_PEER),
        ("unix-abstract:graphgate", UNIX_PEER),
        ("carrier-pigeon:somewhere", UNKNOWN_PEER),
        ("ipv4:not-an-ip:1", UNKNOWN_PEER),
        ("", UNKNOWN_PEER),
    ],
)
def test_peer_strings_are_parsed(peer: str, expected: str) -> None:
    assert client_ip(peer, None, TRUSTED) == expected


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    """C6: a client cannot pick its own address by sending the header itself."""
    assert client_ip("ipv4:198.51.100.9:1000", "1.2.3.4", TRUSTED) == "198.51.100.9"


def test_trusted_peer_gives_the_right_most_untrusted_entry() -> None:
    # The client wrote "1.2.3.4" itself; our proxy appended what it saw.
    header = "1.2.3.4, 198.51.100.9, 10.0.0.5"
    assert client_ip("ipv4:10.0.0.2:1000", header, TRUSTED) == "198.51.100.9"


def test_spoofed_left_entries_never_win() -> None:
    header = "10.9.9.9, 127.0.0.1, 198.51.100.9"
    assert client_ip("ipv4:127.0.0.1:1000", header, TRUSTED) == "198.51.100.9"


def test_all_trusted_gives_the_left_most_hop() -> None:
    assert client_ip("ipv4:10.0.0.2:1", "10.0.0.7, 10.0.0.5", TRUSTED) == "10.0.0.7"


def test_malformed_entry_ends_the_walk() -> None:
    """Nothing left of a malformed entry can be attributed to a trusted proxy."""
    header = "203.0.113.1, unknown, 10.0.0.5"
    assert client_ip("ipv4:10.0.0.2:1", header, TRUSTED) == "10.0.0.5"
    assert client_ip("ipv4:10.0.0.2:1", "garbage", TRUSTED) == "10.0.0.2"


def test_ports_brackets_blanks_and_mapped_addresses_in_the_header() -> None:
    peer = "ipv4:10.0.0.2:1"
    assert client_ip(peer, "198.51.100.9:4711, 10.0.0.5", TRUSTED) == "198.51.100.9"
    assert client_ip(peer, "[2001:db8::7]:443", TRUSTED) == "2001:db8::7"
    assert client_ip(peer, " 198.51.100.9 ,, ", TRUSTED) == "198.51.100.9"
    assert client_ip(peer, "::ffff:198.51.100.9", TRUSTED) == "198.51.100.9"


def test_ipv6_trusted_proxy() -> None:
    assert client_ip("ipv6:[fd00::1]:1", "2001:db8::9, fd00::2", TRUSTED) == "2001:db8::9"


def test_unix_peer_is_trusted_only_when_configured() -> None:
    peer = "unix:/run/graphgate.sock"
    assert client_ip(peer, "198.51.100.9", TRUSTED) == UNIX_PEER
    assert client_ip(peer, "198.51.100.9", TRUSTED, trust_unix_peers=True) == "198.51.100.9"


def test_no_trusted_proxies_means_peer_only() -> None:
    assert client_ip("ipv4:10.0.0.2:1", "198.51.100.9", []) == "10.0.0.2"


def test_padding_attack_is_bounded() -> None:
    header = ",".join(["10.0.0.1"] * 10_000 + ["198.51.100.9"])
    assert client_ip("ipv4:10.0.0.2:1", header, TRUSTED) == "198.51.100.9"
    header = ",".join(["198.51.100.1"] + ["10.0.0.1"] * 10_000)
    assert client_ip("ipv4:10.0.0.2:1", header, TRUSTED) == "10.0.0.1"


@pytest.mark.parametrize("text", ["", "1.2.3", "1.2.3.4:x", "[::1", "[::1]x", "a" * 100, "::1]"])
def test_parse_ip_refuses_junk(text: str) -> None:
    assert parse_ip(text) is None
