"""Embedded real servers for a laptop, tests and CI: PostgreSQL, Valkey and S3.

When the operator sets no ``DATABASE_URL``, ``VALKEY_URL`` or
``S3_ENDPOINT_URL``, ``graphgate serve`` runs the missing parts itself, from
PyPI wheels, in a directory of their own (graphgate uses ``<data_dir>/embedded``)::

    <data_dir>/embedded/
      ports.json     loopback ports, reused on restart while they are free
      postgres/      PGDATA of pgserver's PostgreSQL 16 (Unix socket inside)
      valkey/        valkey.conf, dump.rdb, credentials.json, valkey.log
      seaweedfs/     weed mini: data/, credentials.json, s3.json, weed.log

Data persists across restarts: the same directory gives the same database,
the same Valkey snapshot, the same S3 objects and credentials, and the same
URLs while their ports stay free. Each part logs one INFO line on
``graphgate.embedded`` when it is up (where its data lives, how long it took).

Usage::

    with EmbeddedStores(data_dir / "embedded", postgres=True, valkey=True, s3=True) as stores:
        endpoints = stores.endpoints   # EmbeddedEndpoints

Security: every server listens on 127.0.0.1 or on a Unix socket only.
PostgreSQL uses trust authentication on a socket inside its 0700 PGDATA, so
only its owner (and root) can connect; run as root, pgserver runs it as the OS
user ``pgserver`` and makes PGDATA's *parent* directories (``embedded/``, the
data directory, up to ``/``) world-readable and traversable, which is why the
Valkey and SeaweedFS directories are 0700 of their own.
Valkey requires a generated password and S3 a generated access key and secret
(presigned URLs are verified); they are kept in ``credentials.json`` files
with mode 0600 and never logged (``EmbeddedEndpoints`` leaves them out of its
repr). SeaweedFS telemetry is off. Children get an explicit environment, not
ours. Other local users can still reach SeaweedFS's internal loopback ports
(master, volume, filer gRPC) without credentials: embedded mode is for a
single-user machine, production uses real endpoints.

Processes: Valkey and SeaweedFS are our children and receive SIGTERM if
graphgate dies, however it dies (Linux ``PR_SET_PDEATHSIG``). PostgreSQL
daemonises; :meth:`EmbeddedStores.stop` shuts it down, and one left running by
a crash is adopted by the next start on the same data directory.
"""

from __future__ import annotations

from graphgate.server.embedded._common import EmbeddedStoreError
from graphgate.server.embedded.stores import EmbeddedEndpoints, EmbeddedStores

__all__ = ["EmbeddedEndpoints", "EmbeddedStoreError", "EmbeddedStores"]
