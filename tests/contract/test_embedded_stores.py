"""Contract: the embedded servers are real, private, persistent and leave nothing behind."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import boto3
import httpx
import psutil
import pytest
import valkey.asyncio
import valkey.exceptions

from graphgate.server.embedded import EmbeddedEndpoints, EmbeddedStoreError, EmbeddedStores

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "contract-bucket"


# Named apart from conftest's session fixtures (data_dir, embedded, stores):
# these tests stop and restart their servers.
@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphgate") / "embedded"


@pytest.fixture(scope="module")
def running(store_dir: Path) -> Iterator[EmbeddedStores]:
    with EmbeddedStores(store_dir, postgres=True, valkey=True, s3=True) as stores:
        yield stores


def s3_client(endpoints: EmbeddedEndpoints) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=endpoints.s3_endpoint_url,
        aws_access_key_id=endpoints.s3_access_key,
        aws_secret_access_key=endpoints.s3_secret_key,
        region_name="us-east-1",
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_dead(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def server_processes(data_dir: Path) -> list[str]:
    """Live processes working in ``data_dir`` or naming it on their command line."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "name"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        cwd = proc.info["cwd"] or ""
        if (str(data_dir) in cmdline or cwd.startswith(str(data_dir))) and alive(proc.pid):
            found.append(f"{proc.pid} {proc.info['name']} in {cwd}: {cmdline}")
    return found


async def test_postgres_answers_on_a_unix_socket(running: EmbeddedStores) -> None:
    dsn = running.endpoints.database_url
    assert dsn is not None
    assert dsn.startswith("postgresql://")
    assert "?host=/" in dsn
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_valkey_answers_and_requires_its_password(running: EmbeddedStores) -> None:
    url = running.endpoints.valkey_url
    assert url is not None
    client = valkey.asyncio.Valkey.from_url(url)
    try:
        assert await client.ping()
        await client.set("contract:key", "value")
        assert await client.get("contract:key") == b"value"
    finally:
        await client.aclose()
    anonymous = valkey.asyncio.Valkey.from_url("valkey://" + url.split("@", 1)[1])
    try:
        with pytest.raises(valkey.exceptions.AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()


def test_s3_verifies_signatures_and_presigned_urls(running: EmbeddedStores) -> None:
    s3 = s3_client(running.endpoints)
    try:
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="hello.txt", Body=b"hello")
        assert s3.get_object(Bucket=BUCKET, Key="hello.txt")["Body"].read() == b"hello"
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "hello.txt"}, ExpiresIn=60
        )
    finally:
        s3.close()
    tampered = url.replace("hello.txt", "hello.txt2", 1)
    unsigned = url.split("?", 1)[0]
    with httpx.Client() as http:
        assert http.get(url).content == b"hello"
        assert http.get(tampered).status_code == 403
        assert http.get(unsigned).status_code == 403


def test_secrets_are_private_and_servers_listen_on_loopback_only(
    running: EmbeddedStores, store_dir: Path
) -> None:
    for name in ("valkey/credentials.json", "seaweedfs/credentials.json", "seaweedfs/s3.json"):
        assert (store_dir / name).stat().st_mode & 0o777 == 0o600, name
    for part, pid in running.pids().items():
        listening = [
            c.laddr
            for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert all(addr.ip == "127.0.0.1" for addr in listening), (part, listening)
        assert part != "postgres" or not listening


async def test_valkey_restarts_on_the_same_url_with_its_data(running: EmbeddedStores) -> None:
    url = running.endpoints.valkey_url
    assert url is not None
    client = valkey.asyncio.Valkey.from_url(url)
    try:
        await client.set("contract:survives", "yes")
        running.stop_valkey()
        with pytest.raises(valkey.exceptions.ConnectionError):
            await client.ping()
        running.start_valkey()
        assert running.endpoints.valkey_url == url
        assert await client.get("contract:survives") == b"yes"
    finally:
        await client.aclose()


def test_valkey_port_taken_meanwhile_is_a_one_line_error(running: EmbeddedStores) -> None:
    url = running.endpoints.valkey_url
    assert url is not None
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    running.stop_valkey()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(EmbeddedStoreError) as caught:
            running.start_valkey()
    assert str(caught.value) == f"embedded valkey failed to start: port {port} in use"
    running.start_valkey()


def test_server_exiting_early_names_its_last_log_line(
    running: EmbeddedStores, store_dir: Path
) -> None:
    running.stop_valkey()
    snapshot = store_dir / "valkey" / "dump.rdb"
    snapshot.write_bytes(b"REDIS0011 this is not a snapshot")
    try:
        with pytest.raises(EmbeddedStoreError) as caught:
            running.start_valkey()
    finally:
        snapshot.unlink()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("embedded valkey failed to start: exited with code 1")
    assert "; log: " in message
    running.start_valkey()


async def test_restart_keeps_data_urls_and_leaves_no_process(
    running: EmbeddedStores, store_dir: Path
) -> None:
    before = running.endpoints
    conn = await asyncpg.connect(before.database_url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
        await conn.execute("INSERT INTO kept VALUES ('row')")
    finally:
        await conn.close()
    pids = list(running.pids().values())
    assert len(pids) == 3

    running.stop()
    running.stop()  # idempotent
    assert wait_dead(pids) == []
    assert server_processes(store_dir) == []

    after = running.start()
    assert after == before
    conn = await asyncpg.connect(after.database_url)
    try:
        assert await conn.fetchval("SELECT v FROM kept") == "row"
    finally:
        await conn.close()
    s3 = s3_client(after)
    try:
        assert s3.get_object(Bucket=BUCKET, Key="hello.txt")["Body"].read() == b"hello"
    finally:
        s3.close()


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from graphgate.server.embedded import EmbeddedStores
    stores = EmbeddedStores(Path(sys.argv[1]), postgres=True, valkey=True, s3=True)
    stores.start()
    print(json.dumps(stores.pids()), flush=True)
    time.sleep(60)
    """
)


def test_children_die_with_an_abruptly_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids: dict[str, int] = json.loads(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert wait_dead([pids["valkey"], pids["seaweedfs"]]) == []
    # postgres daemonises and outlives its parent; the next start adopts it
    # (and removes what weed left in /tmp), and its stop really stops it.
    assert alive(pids["postgres"])
    with EmbeddedStores(tmp_path, postgres=True, valkey=True, s3=True) as again:
        assert again.pids()["postgres"] == pids["postgres"]
    assert wait_dead([pids["postgres"]]) == []
    assert server_processes(tmp_path) == []


def test_failed_start_stops_what_it_started(tmp_path: Path) -> None:
    (tmp_path / "valkey").mkdir()
    (tmp_path / "valkey" / "dump.rdb").write_bytes(b"not a snapshot")
    stores = EmbeddedStores(tmp_path, postgres=True, valkey=True, s3=True)
    with pytest.raises(EmbeddedStoreError, match=r"^embedded valkey failed to start: exited"):
        stores.start()
    assert server_processes(tmp_path) == []


@pytest.mark.parametrize("layout", ["file in the way", "data dir is a file"])
def test_unusable_data_dir_is_a_one_line_error(tmp_path: Path, layout: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    data_dir = blocker / "data" if layout == "file in the way" else blocker
    with pytest.raises(EmbeddedStoreError) as caught:
        EmbeddedStores(data_dir, postgres=True, valkey=True, s3=True).start()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"embedded stores: data directory {data_dir} is not")


def test_nothing_requested_starts_nothing_and_touches_no_disk(tmp_path: Path) -> None:
    data_dir = tmp_path / "embedded"
    with EmbeddedStores(data_dir, postgres=False, valkey=False, s3=False) as stores:
        assert stores.endpoints == EmbeddedEndpoints(None, None, None, None, None)
        assert stores.pids() == {}
    assert not data_dir.exists()
