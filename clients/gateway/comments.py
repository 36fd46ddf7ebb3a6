"""The contract's comments, by element, from a descriptor set with source info.

Generated ``_pb2`` modules carry no comments, so the prose of the OpenAPI
document comes from a ``FileDescriptorSet`` compiled with
``--include_source_info`` (``build/graphgate.binpb``, written by
``scripts/gen_protos.py``). Keys are full names: ``graphgate.v1.User``,
``graphgate.v1.User.email`` (a field), ``graphgate.v1.AuthService.Login``
(a method), ``graphgate.v1.Role.ROLE_ADMIN`` (an enum value).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

# Field numbers inside descriptor.proto that source-info paths are made of.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def _message_names(
    prefix: str, message: descriptor_pb2.DescriptorProto, path: tuple[int, ...]
) -> dict[tuple[int, ...], str]:
    name = f"{prefix}.{message.name}"
    names = {path: name}
    for i, field in enumerate(message.field):
        names[(*path, _MESSAGE_FIELD, i)] = f"{name}.{field.name}"
    for i, nested in enumerate(message.nested_type):
        names.update(_message_names(name, nested, (*path, _MESSAGE_NESTED, i)))
    for i, enum in enumerate(message.enum_type):
        names.update(_enum_names(name, enum, (*path, _MESSAGE_ENUM, i)))
    return names


def _enum_names(
    prefix: str, enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...]
) -> dict[tuple[int, ...], str]:
    name = f"{prefix}.{enum.name}"
    names = {path: name}
    for i, value in enumerate(enum.value):
        # Enum values are scoped beside their enum, but keep them under it here.
        names[(*path, _ENUM_VALUE, i)] = f"{name}.{value.name}"
    return names


def _file_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    package = file.package
    names: dict[tuple[int, ...], str] = {}
    for i, message in enumerate(file.message_type):
        names.update(_message_names(package, message, (_FILE_MESSAGE, i)))
    for i, enum in enumerate(file.enum_type):
        names.update(_enum_names(package, enum, (_FILE_ENUM, i)))
    for i, service in enumerate(file.service):
        service_name = f"{package}.{service.name}"
        names[(_FILE_SERVICE, i)] = service_name
        for j, method in enumerate(service.method):
            names[(_FILE_SERVICE, i, _SERVICE_METHOD, j)] = f"{service_name}.{method.name}"
    found: dict[str, str] = {}
    for location in file.source_code_info.location:
        name = names.get(tuple(location.path))
        text = " ".join(line.strip() for line in location.leading_comments.splitlines())
        if name and text.strip():
            found[name] = text.strip()
    return found


def load_comments(path: Path | None) -> Mapping[str, str]:
    """Comments by full name; empty when ``path`` is None or unreadable."""
    if path is None:
        return {}
    try:
        image = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    except (OSError, DecodeError):
        return {}
    found: dict[str, str] = {}
    for file in image.file:
        found.update(_file_comments(file))
    return found
