"""Login storm: do sign-ins at bcrypt 14 starve everything else?

    python -m benchmarks.login_storm [--seconds 10] [--logins 16 | --rate 50]

One server process runs the production chain with bcrypt cost 14. A load
process measures a cheap authenticated RPC (AnalyzeQuery) quietly, then again
during a storm of sign-ins, faster than two cores can hash: ``--logins``
callers signing in back to back (each refusal is retried at once, ignoring
``retry-after``: a flood of refusals as much as of sign-ins), or, with
``--rate``, that many sign-ins a second arriving whatever happened to the
earlier ones. It reports the cheap RPC's p50/p99 in both phases (the ratio is the
figure: target p99 within 2x), and how the sign-ins ended: accepted, refused
as OVERLOADED (and how fast a refusal came back), or other errors.
Not part of the test suite; loopback only; every process stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from typing import Any

import grpc
import uvloop

from benchmarks.cases import chain
from graphgate.v1 import auth_pb2, auth_pb2_grpc

_ADDRESS = "127.0.0.1:50611"


def _serve(ready: Any, stop: Any) -> None:
    async def main() -> None:
        server = chain.ChainServer()
        await server.start(_ADDRESS, rate_limits=False, bcrypt_rounds=14)
        ready.set()
        # The stop flag is a multiprocessing Event: wait for it off the loop.
        await asyncio.to_thread(stop.wait)
        await server.stop(1)

    uvloop.run(main())


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _measure(seconds: float, logins: int, rate: float) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(_ADDRESS) as channel:
        setup = await chain.api_key_setup(channel)
        call = chain.analyze_call(channel, setup)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        storm = asyncio.Event()
        outcomes: dict[str, list[float]] = {}

        async def cheap(samples: list[float], until: float) -> None:
            while time.monotonic() < until:
                started = time.monotonic()
                await call()
                samples.append(time.monotonic() - started)
                await asyncio.sleep(0.005)

        async def login(until: float) -> None:
            request = auth_pb2.LoginRequest(
                email="bench@example.com",
                password="Gq7!vR2#mZ9@kL4$",  # noqa: S106
            )
            while time.monotonic() < until and storm.is_set():
                await sign_in(request)

        async def sign_in(request: auth_pb2.LoginRequest) -> None:
            started = time.monotonic()
            try:
                await auth.Login(request, timeout=30)
                kind = "ok"
            except grpc.aio.AioRpcError as error:
                kind = error.code().name
            outcomes.setdefault(kind, []).append(time.monotonic() - started)

        async def arrivals(until: float) -> None:
            request = auth_pb2.LoginRequest(
                email="bench@example.com",
                password="Gq7!vR2#mZ9@kL4$",  # noqa: S106
            )
            started: list[asyncio.Task[None]] = []
            next_at = time.monotonic()
            while next_at < until:
                started.append(asyncio.create_task(sign_in(request)))
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*started)

        quiet: list[float] = []
        await asyncio.gather(*(cheap(quiet, time.monotonic() + seconds) for _ in range(4)))
        loaded: list[float] = []
        storm.set()
        until = time.monotonic() + seconds
        storm_work = [arrivals(until)] if rate else [login(until) for _ in range(logins)]
        await asyncio.gather(*(cheap(loaded, until) for _ in range(4)), *storm_work)
        return {"quiet": quiet, "loaded": loaded, "logins": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--logins", type=int, default=16, help="callers signing in back to back")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="sign-ins a second instead (open loop)"
    )
    args = parser.parse_args()
    if args.rate < 0 or args.logins < 1:
        parser.error("--rate must not be negative and --logins must be positive")
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    server = context.Process(target=_serve, args=(ready, stop), daemon=True)
    server.start()
    try:
        if not ready.wait(120):
            raise SystemExit("server did not start")
        result = uvloop.run(_measure(args.seconds, args.logins, args.rate))
    finally:
        stop.set()
        server.join(30)
        if server.is_alive():
            server.kill()
    for label, samples in (("quiet", result["quiet"]), ("storm", result["loaded"])):
        p50, p99 = _pct(samples, 0.5), _pct(samples, 0.99)
        print(f"cheap RPC {label}: p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  n={len(samples)}")
    ratio = _pct(result["loaded"], 0.99) / _pct(result["quiet"], 0.99)
    print(f"p99 ratio storm/quiet: {ratio:.2f} (target <= 2)")
    for kind, times in sorted(result["logins"].items()):
        median = statistics.median(times) * 1000
        print(f"logins {kind:20s} n={len(times):5d}  median {median:8.1f} ms")


if __name__ == "__main__":
    main()
