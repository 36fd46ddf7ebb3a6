"""Page tokens: an opaque cursor (creation time, id) for keyset pagination.

Tokens are not signed: every list query is already limited to what the
caller may see, so a forged token can only skip within the caller's own rows.
A token that does not decode is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from graphgate.server.errors import FieldViolation, InvalidArgument

Cursor = tuple[datetime, str]
_T = TypeVar("_T")


def encode_page_token(created_at: datetime, item_id: str) -> str:
    """The token that continues a listing after the item created at ``created_at``."""
    raw = json.dumps([created_at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str) -> Cursor | None:
    """The cursor in ``token`` (None for the first page); raises InvalidArgument."""
    if not token:
        return None
    try:
        created, item_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(created), str(uuid.UUID(item_id))
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise InvalidArgument(
            public_message="invalid page token",
            reason="INVALID_PAGE_TOKEN",
            violations=[FieldViolation("page_token", "not a token this server issued")],
        ) from exc


def page_of(
    rows: Sequence[_T], size: int, cursor_of: Callable[[_T], Cursor]
) -> tuple[list[_T], str]:
    """One page from ``size + 1`` fetched rows, and the token of the next page
    ("" on the last page: the extra row is how we know there is more)."""
    page = list(rows[:size])
    if len(rows) <= size or not page:
        return page, ""
    return page, encode_page_token(*cursor_of(page[-1]))
