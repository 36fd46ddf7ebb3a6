"""A graph worker process: serves ``WorkerService`` for a shard of graphs on a Unix socket.

    python -m graphgate.server.engine.worker --socket PATH --data-dir DIR \\
        [--buffer-pool-bytes N] [--max-db-bytes N] [--max-open-databases K] ...

The engine is not a sandbox and crashes on some plain queries, so it runs
here, supervised by :class:`~graphgate.server.engine.pool.GraphEngine`, where
a crash costs this worker's in-flight calls and nothing else. Every setting
comes from the command line; the process reads no environment.

Security: the socket is created under a umask of 077 inside a directory only
the service user can enter; the worker trusts its caller (the API server) for
authorization, and checks everything it turns into paths or bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc

from graphgate.server.engine.databases import DatabaseSettings, GraphDatabases
from graphgate.server.engine.runner import EngineRunner
from graphgate.server.engine.service import WorkerService
from graphgate.server.event_loop import loop_factory
from graphgate.worker.v1 import worker_pb2_grpc

MIB = 1024 * 1024
#: ``prctl`` option from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1
_log = logging.getLogger("graphgate.engine.worker")


def _power_of_two(text: str) -> int:
    value = int(text)
    if value < 8 * MIB or value & (value - 1):
        raise argparse.ArgumentTypeError("must be a power of two of at least 8 MiB")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The worker's settings. Exits with a usage message on bad arguments."""
    parser = argparse.ArgumentParser(prog="graphgate-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True, help="Unix socket to serve on")
    parser.add_argument("--data-dir", type=Path, required=True, help="holds graphs/<graph_id>/")
    parser.add_argument(
        "--buffer-pool-bytes", type=_positive, default=64 * MIB, help="per database"
    )
    parser.add_argument(
        "--max-db-bytes", type=_power_of_two, default=4096 * MIB, help="per database"
    )
    parser.add_argument("--max-open-databases", type=_positive, default=8)
    parser.add_argument(
        "--max-concurrent-queries", type=_positive, default=8, help="engine threads"
    )
    parser.add_argument("--threads-per-query", type=_positive, default=1)
    parser.add_argument("--max-message-bytes", type=_positive, default=64 * MIB)
    parser.add_argument("--grace-seconds", type=float, default=2.0, help="drain time on SIGTERM")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT, then drain, interrupt what is left and close databases."""
    data_dir: Path = args.data_dir.resolve()
    socket: Path = args.socket
    databases = GraphDatabases(
        data_dir,
        DatabaseSettings(args.buffer_pool_bytes, args.max_db_bytes, args.threads_per_query),
        max_open=args.max_open_databases,
    )
    runner = EngineRunner(args.max_concurrent_queries)
    literals = tuple({str(data_dir), str(args.data_dir), str(socket.parent)})
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", args.max_message_bytes),
            ("grpc.max_send_message_length", args.max_message_bytes),
        ],
    )
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(
        WorkerService(data_dir, databases, runner, literals=literals), server
    )
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    _log.info("graph worker %d serving on %s", os.getpid(), socket)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    _log.info("graph worker %d stopping", os.getpid())
    await server.stop(args.grace_seconds)
    await runner.close()
    await databases.close()


def _die_with_parent(parent: int) -> None:
    # Linux delivers SIGTERM (a clean stop) when the supervising process dies,
    # however it dies; a parent gone before this call is caught by the pid check.
    if parent <= 0:
        return
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit("graph worker: parent process is gone")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m graphgate.server.engine.worker``."""
    args = parse_args(argv)
    _die_with_parent(args.parent_pid)
    faulthandler.enable()  # an engine segfault leaves the Python stacks in the log
    os.umask(0o077)
    with contextlib.suppress(FileNotFoundError):
        args.socket.unlink()  # a stale socket of a crashed predecessor
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s graphgate-worker[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
