"""The README's quick start (docs/quickstart.md), run as a user would run it.

The ``bash`` blocks of the document run in order in one shell, as real
``graphgate`` processes, against the test server (``GRAPHGATE_URL``), with a
config directory of their own. Step 1 (``graphgate serve``) is the fixture.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from graphgate.server.app import GraphgateServer
from tests.conftest import TEST_OPERATOR_KEY
from tests.support import strong_password

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def _blocks() -> list[str]:
    return _BLOCK.findall(DOC.read_text())


def _env(home: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHGATE_", "JWT_"))}
    env.pop("OPERATOR_API_KEY", None)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GRAPHGATE_URL=url,
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
    )
    env.update(extra)
    return env


async def _run(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_quickstart_runs_as_documented(server: GraphgateServer, tmp_path: Path) -> None:
    blocks = _blocks()
    assert len(blocks) == 4, "the test expects the quick start's four bash blocks"
    script = "set -euo pipefail\n" + "".join(
        f"echo '::step {i}'\necho '::step {i}' >&2\n{block}" for i, block in enumerate(blocks)
    )
    env = _env(tmp_path, f"grpc://127.0.0.1:{server.port}")
    code, out, err = await _run(["bash", "-c", script], env, tmp_path, strong_password() + "\n")

    assert "created user ada@example.com" in out, err
    assert "signed in as ada@example.com" in out, err
    config = tmp_path / ".config" / "graphgate" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert "api_key = " in text
    assert "access_token = " in text
    assert "::step 2" in out, f"stopped early:\n{out}\n{err}"
    table = out.split("::step 3")[0].split("::step 2")[1]
    assert re.search(r"^name\s+born$", table, re.MULTILINE), out
    assert re.search(r"^Ada\s+1815$", table, re.MULTILINE), out
    assert re.search(r"^Alan\s+1912$", table, re.MULTILINE), out

    upload_errors = err.split("::step 3")[1]
    if "UploadService.CreateUpload is not implemented yet" in upload_errors:
        # UploadService has not landed: the quick start stops at its upload step.
        assert code == 1
        return
    assert code == 0, err
    assert re.search(r"^people\s*\n-+\s*\n4$", out, re.MULTILINE), out


async def test_config_file_that_others_can_read_is_refused(
    server: GraphgateServer, tmp_path: Path
) -> None:
    env = _env(tmp_path, f"grpc://127.0.0.1:{server.port}")
    config = tmp_path / ".config" / "graphgate" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('api_key = "gg_whatever"\n')
    config.chmod(0o644)
    code, _, err = await _run(["graphgate", "keys", "list"], env, tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        f"graphgate: {config} is accessible by group or others (mode 0644); "
        f"run: chmod 600 {config} (CONFIG_UNSAFE)"
    ]
    config.chmod(0o600)
    code, _, err = await _run(["graphgate", "keys", "list"], env, tmp_path)
    assert code == 1
    assert "graphgate: " in err
    assert "UNAUTHENTICATED" in err or "API_KEY" in err or "TOKEN" in err


async def test_operator_commands_use_the_operator_key(
    server: GraphgateServer, tmp_path: Path
) -> None:
    env = _env(tmp_path, f"grpc://127.0.0.1:{server.port}")
    email = f"op-{os.urandom(4).hex()}@example.com"
    code, out, err = await _run(
        ["graphgate", "users", "create", "--email", email, "--password-stdin"],
        env,
        tmp_path,
        strong_password() + "\n",
    )
    assert code == 0, err
    # In development the key comes from the file `graphgate serve` wrote.
    data_dir = tmp_path / "data"
    (data_dir / "secrets").mkdir(parents=True)
    (data_dir / "secrets" / "operator-api-key").write_text(TEST_OPERATOR_KEY)
    by_file = env | {"GRAPHGATE_DATA_DIR": str(data_dir)}
    code, out, err = await _run(["graphgate", "users", "set-tier", email, "pro"], by_file, tmp_path)
    assert (code, out.strip()) == (0, f"tier set to pro for {email} " + out.strip().split(" ")[-1])
    by_setting = env | {"OPERATOR_API_KEY": TEST_OPERATOR_KEY}
    for action in ("deactivate", "activate"):
        code, out, err = await _run(["graphgate", "users", action, email], by_setting, tmp_path)
        assert code == 0, err
        assert out.startswith(f"{action}d {email}")
    wrong = env | {"OPERATOR_API_KEY": "not-the-key"}
    code, _, err = await _run(["graphgate", "users", "deactivate", email], wrong, tmp_path)
    assert code == 1
    assert "OPERATOR_KEY_INVALID" in err
    nothing = env | {"GRAPHGATE_DATA_DIR": str(tmp_path / "empty")}
    code, _, err = await _run(["graphgate", "users", "activate", email], nothing, tmp_path)
    assert code == 2
    assert "no operator key" in err
