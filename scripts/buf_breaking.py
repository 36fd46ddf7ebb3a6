"""Run ``buf breaking`` on the contracts against the previous commit's.

Contracts change compatibly: every landing is checked against the commit
before it (``HEAD~1``), or against ``--against REV``. The older contracts are
compiled into an image the same offline way as the current ones.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)  # noqa: S603, S607


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with")
    args = parser.parse_args()
    if _git("rev-parse", "--verify", "--quiet", f"{args.against}^{{commit}}").returncode != 0:
        print(f"no {args.against}: nothing to compare with")
        return
    archive = _git("archive", "--format=tar", args.against, "proto")
    if archive.returncode != 0:
        print(f"{args.against} has no contracts: nothing to compare with")
        return
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_protos

    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp)
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(old, filter="data")
        old_image = old / "old.binpb"
        gen_protos.build_image(old / "proto", old_image)
        new_image = ROOT / "build" / "graphgate.binpb"
        command = ["buf", "breaking", str(new_image), "--against", str(old_image)]
        result = subprocess.run(  # noqa: S603
            [*command, "--path", "graphgate"],
            cwd=ROOT,
            check=False,
        )
    if result.returncode != 0:
        sys.exit("buf breaking: the contracts changed incompatibly")
    print(f"contracts compatible with {args.against}")


if __name__ == "__main__":
    main()
