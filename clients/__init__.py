"""graphgate clients: the Python SDK (and, beside it, the REST sidecar and console).

The SDK in one screen::

    from graphgate.clients import Client

    with Client("grpc://127.0.0.1:50051", api_key="gg_...") as client:
        print(client.auth.me().email)
        graph = client.graphs.create("movies", schema=[
            "CREATE NODE TABLE Person(name STRING PRIMARY KEY, born INT64)",
        ])
        client.query(graph.graph_id, "CREATE (:Person {name: $n, born: $b})",
                     params={"n": "Ada", "b": 1815})
        for row in client.stream(graph.graph_id, "MATCH (p:Person) RETURN p"):
            print(row[0]["name"])

:class:`AsyncClient` offers the same calls for asyncio. Failures raise a
:class:`GraphgateError` subclass; reads are retried when the server sheds
load, writes never are (:class:`RetryPolicy`).
"""

from graphgate.clients.aio import AsyncClient
from graphgate.clients.client import Client
from graphgate.clients.errors import (
    AlreadyExists,
    AuthenticationError,
    Cancelled,
    ConfigError,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    GraphgateError,
    InvalidArgument,
    NotFound,
    NotImplementedByServer,
    PermissionDenied,
    QueryRefused,
    QuotaViolation,
    RateLimited,
    ServerError,
    Unavailable,
    UploadError,
)
from graphgate.clients.models import (
    Analysis,
    ApiKey,
    Column,
    CreatedApiKey,
    Graph,
    IngestProgress,
    Member,
    PasswordCheck,
    PasswordPolicy,
    QueryClass,
    Role,
    SecurityEvent,
    Session,
    SignedIn,
    Table,
    Upload,
    UploadFormat,
    UploadProgress,
    UploadState,
    UploadTarget,
    User,
)
from graphgate.clients.results import AsyncRowStream, QueryResult, RowStream, StreamSummary
from graphgate.clients.retry import RetryPolicy
from graphgate.clients.values import Node, Path, Relationship

__all__ = [
    "AlreadyExists",
    "Analysis",
    "ApiKey",
    "AsyncClient",
    "AsyncRowStream",
    "AuthenticationError",
    "Cancelled",
    "Client",
    "Column",
    "ConfigError",
    "CreatedApiKey",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Graph",
    "GraphgateError",
    "IngestProgress",
    "InvalidArgument",
    "Member",
    "Node",
    "NotFound",
    "NotImplementedByServer",
    "PasswordCheck",
    "PasswordPolicy",
    "Path",
    "PermissionDenied",
    "QueryClass",
    "QueryRefused",
    "QueryResult",
    "QuotaViolation",
    "RateLimited",
    "Relationship",
    "RetryPolicy",
    "Role",
    "RowStream",
    "SecurityEvent",
    "ServerError",
    "Session",
    "SignedIn",
    "StreamSummary",
    "Table",
    "Unavailable",
    "Upload",
    "UploadError",
    "UploadFormat",
    "UploadProgress",
    "UploadState",
    "UploadTarget",
    "User",
]
