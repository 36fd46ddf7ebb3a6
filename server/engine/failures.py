"""What an engine failure means for the caller, decided once (CONTROLS.md C16).

The engine reports everything as ``RuntimeError`` with a prefixed message.
:func:`engine_failure` maps it onto the one error hierarchy:

* the user's own mistake (parser, binder, catalog, conversion, overflow,
  runtime, copy) → :class:`InvalidArgument` with the **scrubbed** message;
* an interrupt (our timeout or cancellation) → :class:`DeadlineExceeded`;
* a write refused inside a read-only transaction → :class:`QueryRefused`
  (the firewall let a write through to a viewer: audited upstream);
* a result larger than the graph's memory → :class:`FailedPrecondition`;
* anything else → :class:`Unavailable` with a generic message; the engine's
  text stays in ``detail`` for the server log.

Security: engine messages quote paths, file lines and the query; only the
user-error families are shown, and only after :func:`scrub`.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphgate.server.engine.scrub import scrub
from graphgate.server.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    GraphgateError,
    InvalidArgument,
    QueryRefused,
    Unavailable,
)

# Message prefixes of errors caused by the statement or its data.
_USER_ERRORS = (
    "Parser exception",
    "Binder exception",
    "Catalog exception",
    "Conversion exception",
    "Overflow exception",
    "Runtime exception",
    "Copy exception",
    "Not implemented",
)


def timed_out() -> DeadlineExceeded:
    """The error for a query stopped at its server-set timeout."""
    return DeadlineExceeded(public_message="query exceeded its time limit", reason="QUERY_TIMEOUT")


def engine_failure(error: BaseException, *, literals: Iterable[str] = ()) -> GraphgateError:
    """Map an exception raised by the engine or its client onto the hierarchy.

    ``literals`` are strings to hide in any shown message (the data
    directory). Never raises; costs one scrub of the message at most.
    """
    if isinstance(error, GraphgateError):
        return error
    text = str(error)
    if isinstance(error, (ValueError, TypeError, OverflowError)) or "Unable to cast Python" in text:
        # The client library could not bind a parameter value to an engine type.
        return InvalidArgument(
            public_message="a parameter value cannot be bound (mixed or unsupported types)",
            reason="PARAMETER_UNBOUND",
            detail=text,
        )
    if text.startswith("Interrupted"):
        return timed_out()
    if "read-only transaction" in text and "write" in text:
        return QueryRefused(
            public_message="this request may not write to the graph",
            detail=text,
            audit_event="privilege_escalation_attempt",
        )
    if "do not support prepare multiple statements" in text:
        return InvalidArgument(
            public_message="exactly one statement is allowed per query",
            reason="MULTIPLE_STATEMENTS",
            detail=text,
        )
    if text.startswith("Buffer manager exception"):
        return FailedPrecondition(
            public_message="the query needs more memory than the graph is allowed; "
            "add a LIMIT or aggregate",
            reason="QUERY_MEMORY_EXCEEDED",
            detail=text,
        )
    if text.startswith(_USER_ERRORS):
        return InvalidArgument(
            public_message=scrub(text, literals=literals),
            reason="QUERY_INVALID",
            detail=text,
        )
    return Unavailable(
        public_message="the graph engine could not run the request",
        reason="ENGINE_ERROR",
        detail=f"{type(error).__name__}: {text}",
    )
