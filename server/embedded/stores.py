"""Start the embedded servers graphgate needs, hand out where they answer, stop them all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from graphgate.server.embedded._common import (
    EmbeddedStoreError,
    PortBook,
    ensure_writable_dir,
    logger,
)
from graphgate.server.embedded.postgres import EmbeddedPostgres
from graphgate.server.embedded.seaweedfs import EmbeddedSeaweedFS
from graphgate.server.embedded.valkey import EmbeddedValkey


@dataclass(frozen=True)
class EmbeddedEndpoints:
    """Where the embedded servers answer; ``None`` for each part not embedded.

    ``valkey_url`` carries the Valkey password and ``s3_secret_key`` the S3
    secret: both stay out of ``repr`` so that logging this object is safe.
    """

    database_url: str | None
    valkey_url: str | None = field(repr=False)
    s3_endpoint_url: str | None
    s3_access_key: str | None
    s3_secret_key: str | None = field(repr=False)


def _guarded(part: str, step: Callable[[], None]) -> None:
    """Run ``step``; any failure becomes a one-line :class:`EmbeddedStoreError`."""
    try:
        step()
    except EmbeddedStoreError:
        raise
    except Exception as exc:
        raise EmbeddedStoreError(
            f"embedded {part} failed to start: {type(exc).__name__}: {exc}"
        ) from exc


class EmbeddedStores:
    """Real PostgreSQL, Valkey and S3 servers living in one directory of their own.

    Start them with :meth:`start` (or ``with EmbeddedStores(...) as stores``),
    stop them with :meth:`stop`. One data directory belongs to one
    :class:`EmbeddedStores` at a time. Call :meth:`start` and
    :meth:`start_valkey` from a thread that outlives the servers (normally
    the main thread): Linux's parent-death signal, which stops Valkey and
    SeaweedFS if graphgate dies, fires when the *thread* that started them ends.
    """

    def __init__(self, data_dir: Path, *, postgres: bool, valkey: bool, s3: bool) -> None:
        """Configure; nothing starts before :meth:`start`.

        Args:
            data_dir: the directory the servers own, created if missing
                (graphgate passes ``<its data dir>/embedded``); it holds
                ``postgres/``, ``valkey/``, ``seaweedfs/`` and ``ports.json``.
            postgres: run PostgreSQL embedded.
            valkey: run Valkey embedded.
            s3: run SeaweedFS S3 embedded.
        """
        # Each server runs in its own directory: a relative root would move.
        self._root = Path(data_dir).absolute()
        self._wanted = {"postgres": postgres, "valkey": valkey, "s3": s3}
        self._postgres: EmbeddedPostgres | None = None
        self._valkey: EmbeddedValkey | None = None
        self._s3: EmbeddedSeaweedFS | None = None
        self._endpoints: EmbeddedEndpoints | None = None

    @property
    def endpoints(self) -> EmbeddedEndpoints:
        """The endpoints of the running servers.

        Raises:
            EmbeddedStoreError: :meth:`start` has not succeeded yet.
        """
        if self._endpoints is None:
            raise EmbeddedStoreError("embedded stores are not started")
        return self._endpoints

    def start(self) -> EmbeddedEndpoints:
        """Start the requested servers and wait until each really answers.

        Measured on a 2-core machine: 1.5-3 s on first use (PostgreSQL's
        initdb), about 1 s after (SeaweedFS, which boots while the others
        start). With no part requested it touches nothing and returns
        endpoints that are all ``None``. Calling it again while started
        returns the same endpoints.

        Raises:
            EmbeddedStoreError: one line naming the part and the cause; every
                server this call started is stopped again first.
        """
        if self._endpoints is not None:
            return self._endpoints
        try:
            if any(self._wanted.values()):
                ensure_writable_dir(self._root)
                _guarded("stores", self._start_parts)
        except BaseException:
            # The start failure is the news; a failure to stop is logged by stop().
            with contextlib.suppress(EmbeddedStoreError):
                self.stop()
            raise
        self._endpoints = EmbeddedEndpoints(
            database_url=self._postgres.dsn if self._postgres else None,
            valkey_url=self._valkey.url if self._valkey else None,
            s3_endpoint_url=self._s3.endpoint_url if self._s3 else None,
            s3_access_key=self._s3.access_key if self._s3 else None,
            s3_secret_key=self._s3.secret_key if self._s3 else None,
        )
        return self._endpoints

    def _start_parts(self) -> None:
        ports = PortBook(self._root / "ports.json")
        if self._wanted["s3"]:
            # weed takes longest: it boots while the others start.
            self._s3 = EmbeddedSeaweedFS(self._root / "seaweedfs", ports)
            _guarded("seaweedfs", self._s3.launch)
        if self._wanted["valkey"]:
            self._valkey = EmbeddedValkey(self._root / "valkey", ports)
            _guarded("valkey", self._valkey.start)
        if self._wanted["postgres"]:
            self._postgres = EmbeddedPostgres(self._root / "postgres")
            _guarded("postgres", self._postgres.start)
        if self._s3 is not None:
            _guarded("seaweedfs", self._s3.wait_ready)

    def stop(self) -> None:
        """Stop every server started here; idempotent, safe after a failed start.

        Raises:
            EmbeddedStoreError: a server could not be stopped (all were tried).
        """
        failures: list[str] = []
        for name, part in (
            ("seaweedfs", self._s3),
            ("valkey", self._valkey),
            ("postgres", self._postgres),
        ):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as exc:
                logger.warning("embedded %s did not stop cleanly: %s", name, exc)
                failures.append(f"{name} ({type(exc).__name__}: {exc})")
        self._postgres, self._valkey, self._s3 = None, None, None
        self._endpoints = None
        if failures:
            raise EmbeddedStoreError("embedded stores: stop failed for " + ", ".join(failures))

    def stop_valkey(self) -> None:
        """Stop Valkey alone (for tests of a Valkey outage); :meth:`start_valkey` resumes it."""
        self._running_valkey().stop()

    def start_valkey(self) -> None:
        """Start Valkey again on the same port, so ``valkey_url`` stays valid.

        Raises:
            EmbeddedStoreError: e.g. ``embedded valkey failed to start: port N in use``.
        """
        _guarded("valkey", self._running_valkey().start)

    def pids(self) -> dict[str, int]:
        """Process ids of the running servers by part (for diagnostics and chaos tests)."""
        parts = {"postgres": self._postgres, "valkey": self._valkey, "seaweedfs": self._s3}
        found = {name: part.pid if part else None for name, part in parts.items()}
        return {name: pid for name, pid in found.items() if pid is not None}

    def _running_valkey(self) -> EmbeddedValkey:
        if self._valkey is None or self._endpoints is None:
            raise EmbeddedStoreError("embedded valkey is not part of these started stores")
        return self._valkey

    def __enter__(self) -> EmbeddedStores:
        """Start the servers; the endpoints are then in :attr:`endpoints`."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the servers."""
        self.stop()
