"""S3 object keys, built from ids only (C19, C11).

User text (file names, graph names) never becomes part of a key, so nothing
a caller writes can reach another graph's objects or escape its prefix.
"""

from __future__ import annotations

import uuid

from graphgate.server.errors import FieldViolation, InvalidArgument


def canonical_id(value: str, field: str) -> str:
    """``value`` as a canonical UUID; raises :class:`InvalidArgument` otherwise."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(
            public_message=f"{field} must be a UUID",
            reason="INVALID_ID",
            violations=[FieldViolation(field, "must be a UUID")],
        ) from None


def upload_prefix(graph_id: str) -> str:
    """The key prefix of every upload object of one graph."""
    return f"graphs/{canonical_id(graph_id, 'graph_id')}/uploads/"


def upload_key(graph_id: str, upload_id: str) -> str:
    """The object key of an upload."""
    return upload_prefix(graph_id) + canonical_id(upload_id, "upload_id")


def backup_prefix(graph_id: str) -> str:
    """The key prefix of every backup object of one graph."""
    return f"graphs/{canonical_id(graph_id, 'graph_id')}/backups/"


def backup_key(graph_id: str, backup_id: str) -> str:
    """The object key of a backup."""
    return backup_prefix(graph_id) + canonical_id(backup_id, "backup_id")
