"""The ``graphgate`` command line (API.md, "Operator surface").

This is the one place that reads the process environment: it builds the
settings object and hands it to the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from graphgate.server.embedded import EmbeddedStoreError
from graphgate.server.errors import ConfigurationError, StoreUnavailable
from graphgate.server.settings import Settings, load_settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from graphgate.server.runner import serve

    serve(settings)


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    from graphgate.server.runner import check_data_dir, embedded_stores
    from graphgate.server.stores.postgres import apply_migrations, connect_pool

    async def migrate(dsn: str) -> list[int]:
        pool = await connect_pool(dsn, max_size=1)
        try:
            async with pool.acquire() as conn:
                return await apply_migrations(conn)
        finally:
            await pool.close()

    check_data_dir(settings.data_dir)
    with embedded_stores(settings, postgres_only=True) as resolved:
        assert resolved.database_url is not None  # noqa: S101 - resolved above
        applied = asyncio.run(migrate(resolved.database_url))
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``graphgate`` command."""
    parser = argparse.ArgumentParser(
        prog="graphgate",
        description="Multi-tenant LadybugDB graphs behind gRPC contracts.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(run=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphgate`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"graphgate: configuration error: {problem}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    try:
        args.run(settings, args)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"graphgate: {problem}", file=sys.stderr)
        return 2
    except EmbeddedStoreError as exc:
        print(f"graphgate: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"graphgate: store unavailable: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
