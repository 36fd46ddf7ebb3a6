"""Protobuf response → JSON, and the two encodings of a server stream.

Responses are proto3 JSON: camelCase names, int64 as strings, enums by name,
fields at their default value included (``"truncated": false``), so a
browser never has to know proto3's "absent means default" rule.

A server-streaming RPC is sent as newline-delimited JSON by default, one
``{"result": <message>}`` per line, or, when the client sends
``Accept: text/event-stream``, as server-sent events (``event: result``).
An error after the first message cannot change the HTTP status any more: it
arrives as a last ``{"error": {"code", "message", "details"}}`` line (SSE:
``event: error``) and the stream ends.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from graphgate.clients.gateway.bindings import HttpBinding

NDJSON = "application/x-ndjson"
EVENT_STREAM = "text/event-stream"


def message_json(message: Message) -> dict[str, Any]:
    """``message`` as a proto3 JSON object (defaults included)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def dumps(value: Any) -> bytes:
    """Compact JSON; never emits a raw newline (strings escape theirs)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def response_json(binding: HttpBinding, message: Message) -> Any:
    """The JSON the HTTP response carries: the whole message or its ``response_body`` field."""
    data = message_json(message)
    if not binding.response_body:
        return data
    field = message.DESCRIPTOR.fields_by_name[binding.response_body]
    return data.get(field.json_name)


class StreamEncoder(Protocol):
    """Frames the messages of a server stream for one HTTP media type."""

    media_type: str

    def result(self, payload: Any) -> bytes:
        """One message of the stream."""
        ...

    def error(self, payload: dict[str, Any]) -> bytes:
        """The error that ended the stream (the last frame)."""
        ...


class NdjsonEncoder:
    """``{"result": ...}`` / ``{"error": ...}``, one JSON object per line."""

    media_type = NDJSON

    def result(self, payload: Any) -> bytes:
        return dumps({"result": payload}) + b"\n"

    def error(self, payload: dict[str, Any]) -> bytes:
        return dumps({"error": payload}) + b"\n"


class EventStreamEncoder:
    """Server-sent events: ``event: result`` / ``event: error`` with JSON data."""

    media_type = EVENT_STREAM

    def result(self, payload: Any) -> bytes:
        return b"event: result\ndata: " + dumps(payload) + b"\n\n"

    def error(self, payload: dict[str, Any]) -> bytes:
        return b"event: error\ndata: " + dumps(payload) + b"\n\n"


def choose_encoder(accept: str | None) -> StreamEncoder:
    """Server-sent events when the client asks for them, NDJSON otherwise."""
    wanted = [part.split(";", 1)[0].strip().lower() for part in (accept or "").split(",")]
    if EVENT_STREAM in wanted:
        return EventStreamEncoder()
    return NdjsonEncoder()
