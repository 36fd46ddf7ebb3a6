"""What the SDK returns: plain dataclasses built from the contract's messages.

Timestamps become timezone-aware ``datetime`` (None when unset), enums become
``str`` enums (``Role.ADMIN == "admin"``), so results print, compare and
serialise without protobuf in the way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from graphgate.v1 import common_pb2, graph_pb2, upload_pb2


def _time(ts: timestamp_pb2.Timestamp, *, present: bool = True) -> datetime | None:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def _name(enum_type: Any, value: int) -> str:
    """The name of a generated enum's value ("" for a value this SDK does not know)."""
    try:
        return str(enum_type.Name(value))
    except ValueError:
        return ""


class Role(enum.StrEnum):
    """A role on a graph; admins may do all members may, members all viewers may."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @classmethod
    def parse(cls, value: Role | str) -> Role:
        """A role from ``"admin"``, ``"ROLE_ADMIN"`` or a :class:`Role`."""
        text = str(value).strip().lower().removeprefix("role_")
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"role must be admin, member or viewer, got {value!r}") from None

    def to_proto(self) -> int:
        """The ``graphgate.v1.Role`` value."""
        return int(common_pb2.Role.Value(f"ROLE_{self.name}"))

    @classmethod
    def from_proto(cls, value: int) -> Role | None:
        """The role of a ``graphgate.v1.Role`` value (None when unspecified)."""
        name = _name(common_pb2.Role, value).removeprefix("ROLE_")
        return None if name == "UNSPECIFIED" else cls[name]


class QueryClass(enum.StrEnum):
    """What a statement does, as the server's query firewall classified it."""

    UNSPECIFIED = "unspecified"
    READ = "read"
    WRITE = "write"
    MIXED = "mixed"
    BULK = "bulk"
    ADMIN = "admin"
    SCHEMA_DDL = "schema_ddl"

    @classmethod
    def from_proto(cls, value: int) -> QueryClass:
        """The class of a ``graphgate.v1.QueryClass`` value."""
        try:
            return cls[_name(graph_pb2.QueryClass, value).removeprefix("QUERY_CLASS_")]
        except (KeyError, ValueError):
            return cls.UNSPECIFIED


class UploadFormat(enum.StrEnum):
    """A data file's format (checked by content on the server, not by name)."""

    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"

    @classmethod
    def parse(cls, value: UploadFormat | str) -> UploadFormat:
        """A format from ``"csv"``, ``"UPLOAD_FORMAT_CSV"`` or an :class:`UploadFormat`."""
        text = str(value).strip().lower().removeprefix("upload_format_")
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"format must be csv, parquet or json, got {value!r}") from None

    @classmethod
    def from_path(cls, name: str) -> UploadFormat:
        """The format a file name suggests.

        ``.csv``; ``.parquet`` or ``.pq``; ``.json``, ``.ndjson`` or ``.jsonl``.
        """
        suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        by_suffix = {"csv": cls.CSV, "parquet": cls.PARQUET, "pq": cls.PARQUET}
        by_suffix |= {"json": cls.JSON, "ndjson": cls.JSON, "jsonl": cls.JSON}
        if suffix not in by_suffix:
            raise ValueError(
                f"cannot tell the format of {name!r}: pass format='csv', 'parquet' or 'json'"
            )
        return by_suffix[suffix]

    def to_proto(self) -> int:
        """The ``graphgate.v1.UploadFormat`` value."""
        return int(upload_pb2.UploadFormat.Value(f"UPLOAD_FORMAT_{self.name}"))


class UploadState(enum.StrEnum):
    """Where an upload is in its life."""

    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    UPLOADED = "uploaded"
    VALIDATED = "validated"
    INGESTING = "ingesting"
    INGESTED = "ingested"
    FAILED = "failed"

    @classmethod
    def from_proto(cls, value: int) -> UploadState:
        """The state of a ``graphgate.v1.UploadState`` value."""
        try:
            return cls[_name(upload_pb2.UploadState, value).removeprefix("UPLOAD_STATE_")]
        except (KeyError, ValueError):
            return cls.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class User:
    """An account."""

    user_id: str
    email: str
    name: str
    tier: str
    created_at: datetime | None

    @classmethod
    def from_proto(cls, m: common_pb2.User) -> User:
        """Build from a ``graphgate.v1.User``."""
        return cls(m.user_id, m.email, m.name, m.tier, _time(m.created_at))


@dataclass(frozen=True, slots=True)
class Session:
    """A signed access token and when it expires."""

    access_token: str
    expires_at: datetime | None
    expires_in_seconds: int

    def __repr__(self) -> str:
        return f"Session(access_token=<hidden>, expires_at={self.expires_at!r})"

    @classmethod
    def from_proto(cls, m: common_pb2.Session) -> Session:
        """Build from a ``graphgate.v1.Session``."""
        return cls(m.access_token, _time(m.expires_at), m.expires_in_seconds)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """An account and its new session (register, login)."""

    user: User
    session: Session


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """The rules a new password must meet."""

    min_length: int
    max_length: int
    require_upper: bool
    require_lower: bool
    require_digit: bool
    require_special: bool
    min_distinct_characters: int
    min_score: int


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """A candidate password's score and the rules it breaks."""

    score: int
    acceptable: bool
    problems: list[str]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's description (never its secret)."""

    api_key_id: str
    name: str
    description: str
    display_prefix: str
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool

    @classmethod
    def from_proto(cls, m: Any) -> ApiKey:
        """Build from a ``graphgate.v1.ApiKey``."""
        return cls(
            m.api_key_id,
            m.name,
            m.description,
            m.display_prefix,
            _time(m.created_at),
            _time(m.expires_at, present=m.HasField("expires_at")),
            _time(m.last_used_at, present=m.HasField("last_used_at")),
            m.revoked,
        )


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A new key and its secret: shown once, store it now."""

    api_key: str
    key: ApiKey

    def __repr__(self) -> str:
        return f"CreatedApiKey(api_key=<hidden>, key={self.key!r})"


@dataclass(frozen=True, slots=True)
class Graph:
    """A graph (or subgraph) as the caller sees it."""

    graph_id: str
    name: str
    description: str
    parent_graph_id: str | None
    role: Role | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, m: graph_pb2.Graph) -> Graph:
        """Build from a ``graphgate.v1.Graph``."""
        return cls(
            m.graph_id,
            m.name,
            m.description,
            m.parent_graph_id or None,
            Role.from_proto(m.role),
            _time(m.created_at),
        )


@dataclass(frozen=True, slots=True)
class Member:
    """A user's role on a graph."""

    user_id: str
    email: str
    role: Role | None

    @classmethod
    def from_proto(cls, m: graph_pb2.Member) -> Member:
        """Build from a ``graphgate.v1.Member``."""
        return cls(m.user_id, m.email, Role.from_proto(m.role))


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table or a result: its name and the engine's type name."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Table:
    """A node or relationship table of a graph's schema."""

    name: str
    kind: str
    columns: list[Column]
    source_table: str | None
    destination_table: str | None
    primary_key: str | None

    @classmethod
    def from_proto(cls, m: graph_pb2.Table) -> Table:
        """Build from a ``graphgate.v1.Table``."""
        return cls(
            m.name,
            m.kind,
            [Column(c.name, c.type) for c in m.columns],
            m.source_table or None,
            m.destination_table or None,
            m.primary_key or None,
        )


@dataclass(frozen=True, slots=True)
class Analysis:
    """The firewall's verdict on a statement, without running it."""

    query_class: QueryClass
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class Upload:
    """A data file on its way into a graph table."""

    upload_id: str
    graph_id: str
    table_name: str
    file_name: str
    format: UploadFormat | None
    size_bytes: int
    row_count: int
    state: UploadState
    error: str
    created_at: datetime | None

    @classmethod
    def from_proto(cls, m: upload_pb2.Upload) -> Upload:
        """Build from a ``graphgate.v1.Upload``."""
        fmt = _name(upload_pb2.UploadFormat, m.format).removeprefix("UPLOAD_FORMAT_").lower()
        return cls(
            m.upload_id,
            m.graph_id,
            m.table_name,
            m.file_name,
            UploadFormat(fmt) if fmt in UploadFormat._value2member_map_ else None,
            m.size_bytes,
            m.row_count,
            UploadState.from_proto(m.state),
            m.error,
            _time(m.created_at),
        )


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where to send a file: a presigned, time-limited URL."""

    upload: Upload
    url: str
    method: str
    form_fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime | None

    def __repr__(self) -> str:
        # The URL and fields carry a signature: keep them out of logs.
        return f"UploadTarget(upload={self.upload!r}, method={self.method!r})"


@dataclass(frozen=True, slots=True)
class UploadProgress:
    """One progress report of :meth:`Uploads.upload_file`.

    ``phase`` is ``"upload"`` (bytes going to storage), ``"validate"`` or
    ``"ingest"`` (rows going into the graph).
    """

    phase: str
    bytes_sent: int
    total_bytes: int
    rows_loaded: int = 0
    state: UploadState = UploadState.PENDING

    @property
    def fraction(self) -> float:
        """Share of the file handled in this phase, 0.0 to 1.0."""
        if self.total_bytes <= 0:
            return 1.0
        return min(1.0, self.bytes_sent / self.total_bytes)


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """One progress report of an ingest."""

    state: UploadState
    rows_loaded: int
    bytes_read: int
    upload: Upload | None


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One audit event (operator view)."""

    event_type: str
    risk_level: str
    json: str
