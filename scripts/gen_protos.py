"""Regenerate graphgate's protobuf and gRPC stubs, offline, in one command.

    python scripts/gen_protos.py          # write gen/ and build/graphgate.binpb
    python scripts/gen_protos.py --check  # exit 1 when gen/ is stale (CI)

Imports resolve without the network and without third-party .proto sources
in the repository (docs/decisions/002-offline-protos.md):

- ``google/api/*.proto`` and ``google/type/*.proto`` come from the
  googleapis-common-protos wheel (an include path into site-packages);
- ``google/protobuf/*.proto`` from grpcio-tools' bundled includes;
- ``buf/validate/validate.proto`` exists only as a serialized descriptor inside
  the protovalidate wheel; it is written out as a descriptor set and passed to
  protoc with ``--descriptor_set_in``, which also lets us generate the
  ``buf.validate.validate_pb2`` module our stubs import.

The same run writes ``build/graphgate.binpb`` (an image with source info) that
``buf lint`` and ``buf breaking`` read.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
GEN_ROOT = ROOT / "gen"
IMAGE = ROOT / "build" / "graphgate.binpb"
_VALIDATE = "buf/validate/validate.proto"


def _include_paths(proto_root: Path) -> list[Path]:
    import google.api.annotations_pb2
    import grpc_tools

    # google.api is a namespace package: locate it through one of its modules.
    googleapis = Path(google.api.annotations_pb2.__file__).resolve().parent.parent.parent
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    return [proto_root, googleapis, well_known]


def _write_validate_descriptor_set(path: Path) -> None:
    from google.protobuf import descriptor_pb2
    from protovalidate._gen.buf.validate import validate_pb

    file_set = descriptor_pb2.FileDescriptorSet()
    file_set.file.add().ParseFromString(validate_pb.desc().proto.to_binary())
    path.write_bytes(file_set.SerializeToString())


def _protoc(*args: str) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stderr}")


def _protos(proto_root: Path) -> list[str]:
    return sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))


def _common_args(proto_root: Path, deps: Path) -> list[str]:
    _write_validate_descriptor_set(deps)
    return [f"--descriptor_set_in={deps}", *(f"-I{p}" for p in _include_paths(proto_root))]


def build_image(proto_root: Path, image: Path) -> None:
    """Compile the contracts under ``proto_root`` into a buf-readable image."""
    with tempfile.TemporaryDirectory() as tmp:
        common = _common_args(proto_root, Path(tmp) / "deps.binpb")
        image.parent.mkdir(parents=True, exist_ok=True)
        _protoc(
            *common,
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={image}",
            *_protos(proto_root),
        )


def generate(out: Path) -> None:
    """Generate every stub (messages, gRPC, typed stubs) under ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        common = _common_args(PROTO_ROOT, Path(tmp) / "deps.binpb")
        out.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        stubs = [
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={out}",
            f"--mypy_out={out}",
        ]
        _protoc(
            *common,
            *stubs,
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
            *_protos(PROTO_ROOT),
        )
        _protoc(*common, *stubs, _VALIDATE)
    # The contract with its comments, shipped as package data: the REST
    # sidecar builds its OpenAPI descriptions from it (generated pb2 modules
    # carry no comments).
    build_image(PROTO_ROOT, out / "graphgate" / "v1" / "contract.binpb")
    packages = {p.parent for p in out.rglob("*_pb2.py")} | {out / "buf"}
    for package in sorted(packages):
        if package == out / "graphgate":
            continue  # a namespace shared with graphgate.server and friends
        init = package / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated protobuf stubs (do not edit)."""\n')
        (package / "py.typed").touch()


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when gen/ is stale")
    args = parser.parse_args()
    build_image(PROTO_ROOT, IMAGE)
    if not args.check:
        shutil.rmtree(GEN_ROOT, ignore_errors=True)
        generate(GEN_ROOT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        if not _same_tree(fresh, GEN_ROOT):
            sys.exit("gen/ is stale: run `python scripts/gen_protos.py` and commit the result")


if __name__ == "__main__":
    main()
