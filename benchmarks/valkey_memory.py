"""Valkey memory per tracked identity and category (rate windows and auth state).

    python -m benchmarks.valkey_memory [--identities 20000]

Starts an embedded Valkey in a temporary directory, runs the real gate script
(``server/stores/lua/gate.lua``) for N identities in one category, then in a
second category, then checks N user tokens (state hash + token marker), and
prints the growth of ``used_memory`` per identity for each step. Loopback
only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from graphgate.server.embedded import EmbeddedStores
from graphgate.server.lifecycle import valkey_client
from graphgate.server.stores.gate import GateStore, RateSpec, user_tag


async def _used(client: object) -> int:
    info = await client.info("memory")  # type: ignore[attr-defined]
    return int(info["used_memory"])


async def _measure(url: str, identities: int) -> None:
    client = valkey_client(url)
    gate = GateStore(client)
    await client.flushdb()
    now_ms = 1_900_000_000_000
    spec_a = RateSpec(category="query", limits=(300, 750, 1500), window_ms=60_000)
    spec_b = RateSpec(category="graph_read", limits=(300, 750, 1500), window_ms=60_000)
    before = await _used(client)
    for i in range(identities):
        await gate.count(user_tag(f"user-{i:08d}"), spec_a, now_ms)
    one = await _used(client)
    for i in range(identities):
        await gate.count(user_tag(f"user-{i:08d}"), spec_b, now_ms)
    two = await _used(client)
    for i in range(identities):
        await gate.put_user_state(f"user-{i:08d}", active=True, valid_after_ms=0, tier="free")
    three = await _used(client)
    await client.aclose()
    print(f"identities: {identities}")
    print(f"rate window, first category : {(one - before) / identities:7.1f} bytes per identity")
    print(f"rate window, each more category: {(two - one) / identities:7.1f} bytes per identity")
    print(f"user state (revocation check): {(three - two) / identities:7.1f} bytes per user")
    print(
        f"one million active users, 3 categories: about "
        f"{((one - before) + 2 * (two - one) + (three - two)) / identities * 1e6 / 2**20:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=20_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedStores(Path(tmp), postgres=False, valkey=True, s3=False) as stores,
    ):
        url = stores.endpoints.valkey_url
        assert url is not None
        asyncio.run(_measure(url, args.identities))


if __name__ == "__main__":
    main()
