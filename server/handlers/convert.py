"""Conversions between stored records and contract messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from graphgate.server.services.tokens import IssuedToken
from graphgate.server.stores.api_keys import ApiKeyRecord
from graphgate.server.stores.users import UserRecord
from graphgate.v1 import common_pb2, keys_pb2


def timestamp(instant: datetime | float | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp (None stays unset)."""
    if instant is None:
        return None
    message = timestamp_pb2.Timestamp()
    if isinstance(instant, datetime):
        message.FromDatetime(instant)
    else:
        message.FromNanoseconds(int(instant * 1_000_000_000))
    return message


def user(record: UserRecord) -> common_pb2.User:
    """The contract's User."""
    return common_pb2.User(
        user_id=record.user_id,
        email=record.email,
        name=record.name,
        tier=record.tier,
        created_at=timestamp(record.created_at),
    )


def session(issued: IssuedToken) -> common_pb2.Session:
    """The contract's Session."""
    claims = issued.claims
    return common_pb2.Session(
        access_token=issued.token,
        expires_at=timestamp(claims.expires_at),
        expires_in_seconds=round(claims.expires_at - claims.issued_at),
    )


def api_key(record: ApiKeyRecord) -> keys_pb2.ApiKey:
    """The contract's ApiKey (never the secret)."""
    return keys_pb2.ApiKey(
        api_key_id=record.api_key_id,
        name=record.name,
        description=record.description,
        display_prefix=record.display_prefix,
        created_at=timestamp(record.created_at),
        expires_at=timestamp(record.expires_at),
        last_used_at=timestamp(record.last_used_at),
        revoked=record.revoked_at is not None,
    )
