"""``graphgate serve`` as an operator runs it: a real process, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHGATE_", "JWT_"))}
    env.update(
        GRAPHGATE_DATA_DIR=str(data_dir),
        GRAPHGATE_GRPC_LISTEN=f"127.0.0.1:{port}",
        GRAPHGATE_HTTP_LISTEN=f"127.0.0.1:{_free_port()}",
    )
    env.update(extra)
    return env


def _serve(env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "graphgate.server", "serve"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_serving(port: int, process: subprocess.Popen[str], timeout: float = 90) -> float:
    started = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < timeout:
            if process.poll() is not None:
                raise AssertionError(f"serve exited early: {process.communicate()[1]}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.RpcError:
                time.sleep(0.1)
    raise AssertionError("server did not become SERVING")


def _embedded_processes(server: subprocess.Popen[str], data_dir: Path) -> list[psutil.Process]:
    """The server's children, plus PostgreSQL, which daemonises but names its data dir."""
    found = psutil.Process(server.pid).children(recursive=True)
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(data_dir) in " ".join(proc.info["cmdline"] or []) and proc not in found:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(processes: list[psutil.Process], timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    left = [p for p in processes if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if _alive(p)]
    return [p.name() for p in left if _alive(p)]


def _names(processes: list[psutil.Process]) -> str:
    return " ".join(p.name() for p in processes)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_serve_starts_embedded_stores_and_leaves_nothing_behind(data_dir: Path) -> None:
    port = _free_port()
    process = _serve(_env(data_dir, port))
    try:
        cold = _wait_serving(port, process)
        running = _embedded_processes(process, data_dir)
        names = _names(running)
        assert "valkey-server" in names
        assert "weed" in names
        assert "postgres" in names
        print(
            "RSS MB:",
            {
                p.name(): round(p.memory_info().rss / 2**20)
                for p in [psutil.Process(process.pid), *running]
            },
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        logs = process.communicate()[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert "embedded" in logs
    assert _wait_gone(running) == []

    # A warm start reuses the data directory (migrations already applied); the
    # graph workers get the engine memory the operator set.
    process = _serve(_env(data_dir, port, GRAPHGATE_GRAPH_BUFFER_POOL_MIB="32"))
    try:
        warm = _wait_serving(port, process)
        running = _embedded_processes(process, data_dir)
        workers = [p.cmdline() for p in running if "graphgate.server.engine.worker" in p.cmdline()]
        assert workers
        assert all(f"--buffer-pool-bytes={32 * 2**20}" in cmdline for cmdline in workers)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "applied migration" not in process.communicate()[1]
    assert _wait_gone(running) == []
    print(f"cold start {cold:.2f}s, warm start {warm:.2f}s")


def test_serve_on_its_defaults_uses_var_in_the_working_directory(tmp_path: Path) -> None:
    """README's first command: no GRAPHGATE_DATA_DIR, so the data dir is the relative
    ``var``. The embedded servers run in directories of their own, so a relative
    path must not reach them as it is."""
    port = _free_port()
    env = _env(tmp_path / "unused", port)
    del env["GRAPHGATE_DATA_DIR"]
    process = _serve(env, cwd=tmp_path)
    try:
        _wait_serving(port, process)
        running = _embedded_processes(process, tmp_path / "var")
        assert "valkey-server" in _names(running)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert _wait_gone(running) == []
    assert (tmp_path / "var" / "embedded" / "valkey" / "valkey.conf").is_file()
    assert not (tmp_path / "unused").exists()


def test_unknown_setting_value_is_a_one_line_error(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graphgate.server", "serve"],
        env=_env(data_dir, _free_port(), GRAPHGATE_ENV="staging"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "graphgate: configuration error: GRAPHGATE_ENV: expected one of development, "
        "production, got 'staging'"
    ]
    assert not data_dir.exists()


def test_data_dir_that_cannot_be_written_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "graphgate.server", "serve"],
        env=_env(blocker / "data", _free_port()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "GRAPHGATE_DATA_DIR" in lines[0]
    assert "not writable" in lines[0]


def test_port_in_use_is_a_one_line_error_and_stops_embedded_stores(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _serve(_env(data_dir, port))
        seen: list[psutil.Process] = []
        while process.poll() is None:
            seen += [p for p in _embedded_processes(process, data_dir) if p not in seen]
            time.sleep(0.05)
        stderr = process.communicate()[1]
    assert process.returncode == 2
    errors = [line for line in stderr.splitlines() if line.startswith("graphgate:")]
    assert errors == [f"graphgate: cannot listen on 127.0.0.1:{port}: address in use?"]
    assert seen, "the embedded stores should have started before the bind failed"
    assert _wait_gone(seen) == []
