"""Overload: offer about 3x what the server can do and see what gets through.

    python -m benchmarks.overload [--seconds 30] [--factor 3] [--inflight 64]

One server process runs the production chain (rate limits off, so refusals
come from admission control only, with its in-flight thresholds set to
``--inflight`` start / 0.75 of it stop through OperatorService). The load
process first measures capacity (closed loop, 64 in flight), then offers
``factor`` times that rate open-loop for ``--seconds``: each call is sent on
schedule whether or not earlier ones finished. It reports goodput against the
unloaded maximum (target >= 0.9), p99 of admitted calls against the unloaded
p99 (target <= 5x), the fraction shed, and the server's resident memory.
On a 2-core machine the load generator competes with the server for CPU; the
offered rate actually achieved is printed too. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

import grpc
import psutil
import uvloop

from benchmarks.cases import chain
from graphgate.v1 import operator_pb2, operator_pb2_grpc

_ADDRESS = "127.0.0.1:50612"
_OPERATOR_KEY = "bench-operator-key-" + "0123456789abcdef" * 2


def _serve(ready: Any, stop: Any, pid: Any) -> None:
    async def main() -> None:
        server = chain.ChainServer()
        await server.start(_ADDRESS, rate_limits=False, operator_key=_OPERATOR_KEY)
        pid.value = multiprocessing.current_process().pid or 0
        ready.set()
        await asyncio.to_thread(stop.wait)
        await server.stop(1)

    uvloop.run(main())


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def _run(seconds: float, factor: float, inflight: int, server_pid: int) -> dict[str, Any]:
    process = psutil.Process(server_pid)
    async with grpc.aio.insecure_channel(_ADDRESS) as channel:
        await operator_pb2_grpc.OperatorServiceStub(channel).SetAdmissionThresholds(
            operator_pb2.SetAdmissionThresholdsRequest(
                thresholds=operator_pb2.AdmissionThresholds(
                    memory_start_bytes=8 * 2**30,
                    memory_stop_bytes=7 * 2**30,
                    cpu_start_percent=400,
                    cpu_stop_percent=300,
                    inflight_start=inflight,
                    inflight_stop=max(1, inflight * 3 // 4),
                    per_graph_inflight=64,
                )
            ),
            metadata=[("x-api-key", _OPERATOR_KEY)],
        )
        setup = await chain.api_key_setup(channel)
        call = chain.analyze_call(channel, setup)

        quiet: list[float] = []

        async def closed(until: float) -> None:
            while time.monotonic() < until:
                started = time.monotonic()
                await call()
                quiet.append(time.monotonic() - started)

        until = time.monotonic() + 8
        await asyncio.gather(*(closed(until) for _ in range(64)))
        capacity = len(quiet) / 8
        rss_before = process.memory_info().rss

        admitted: list[float] = []
        outcomes: dict[str, int] = {}
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            started = time.monotonic()
            try:
                await call()
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] = outcomes.get(error.code().name, 0) + 1
                return
            admitted.append(time.monotonic() - started)
            outcomes["OK"] = outcomes.get("OK", 0) + 1

        rate = capacity * factor
        start = time.monotonic()
        sent = 0
        peak_rss = rss_before
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate)
            while sent < due and len(tasks) < 20_000:
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            peak_rss = max(peak_rss, process.memory_info().rss)
            await asyncio.sleep(0.002)
        elapsed = time.monotonic() - start
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "capacity": capacity,
            "quiet_p99": _pct(quiet, 0.99),
            "offered": sent / elapsed,
            "goodput": outcomes.get("OK", 0) / elapsed,
            "admitted_p99": _pct(admitted, 0.99),
            "outcomes": outcomes,
            "rss_before": rss_before,
            "rss_peak": peak_rss,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--factor", type=float, default=3.0)
    parser.add_argument("--inflight", type=int, default=64)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ready, stop, pid = context.Event(), context.Event(), context.Value("i", 0)
    server = context.Process(target=_serve, args=(ready, stop, pid), daemon=True)
    server.start()
    try:
        if not ready.wait(120):
            raise SystemExit("server did not start")
        r = uvloop.run(_run(args.seconds, args.factor, args.inflight, pid.value))
    finally:
        stop.set()
        server.join(30)
        if server.is_alive():
            server.kill()
    total = sum(r["outcomes"].values()) or 1
    shed = r["outcomes"].get("UNAVAILABLE", 0) / total
    # Calls beyond GRAPHGATE_MAX_CONCURRENT_RPCS are refused by gRPC itself
    # (CANCELLED here) before any of graphgate's code runs: the cheapest refusal.
    ceiling = (
        r["outcomes"].get("CANCELLED", 0) + r["outcomes"].get("RESOURCE_EXHAUSTED", 0)
    ) / total
    print(f"unloaded capacity {r['capacity']:8.0f} calls/s, p99 {r['quiet_p99']:7.1f} ms")
    print(f"offered           {r['offered']:8.0f} calls/s ({r['offered'] / r['capacity']:.2f}x)")
    print(
        f"goodput           {r['goodput']:8.0f} calls/s ({r['goodput'] / r['capacity']:.2f} "
        "of capacity; target >= 0.9)"
    )
    print(
        f"admitted p99      {r['admitted_p99']:8.1f} ms ({r['admitted_p99'] / r['quiet_p99']:.1f}x "
        "unloaded; target <= 5x)"
    )
    print(f"shed by admission {shed:8.1%}, refused at the gRPC ceiling {ceiling:.1%}")
    print(f"outcomes          {r['outcomes']}")
    print(f"server RSS        {r['rss_before'] / 2**20:.0f} -> {r['rss_peak'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
