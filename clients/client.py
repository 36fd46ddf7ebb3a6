"""The synchronous :class:`Client`.

::

    from graphgate.clients import Client

    with Client("grpc://127.0.0.1:50051", api_key="gg_...") as client:
        graph = client.graphs.create("movies", schema=[
            "CREATE NODE TABLE Person(name STRING PRIMARY KEY, born INT64)",
        ])
        client.query(graph.graph_id, "CREATE (:Person {name: $name, born: $born})",
                     params={"name": "Ada", "born": 1815})
        result = client.query(graph.graph_id, "MATCH (p:Person) RETURN p.name, p.born")
        print(result.rows)            # [['Ada', 1815]]

One client holds one channel; it is safe to share between threads, and
cheaper to keep than to make per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from graphgate.clients.auth import DEFAULT_REFRESH_MARGIN, ApiKeyCredentials, SessionCredentials
from graphgate.clients.config import ClientSettings
from graphgate.clients.models import Analysis, Session
from graphgate.clients.resources import queries
from graphgate.clients.resources.auth import Auth
from graphgate.clients.resources.graphs import Graphs
from graphgate.clients.resources.keys import Keys
from graphgate.clients.resources.operator import Operator
from graphgate.clients.resources.uploads import Uploads
from graphgate.clients.results import QueryResult, RowStream
from graphgate.clients.retry import RetryPolicy
from graphgate.clients.target import DEFAULT_URL, TlsOption, resolve_target
from graphgate.clients.transport import Credentials, Transport, new_request_id


def credentials_from(
    *,
    api_key: str | None,
    email: str | None,
    password: str | None,
    token: str | None,
    refresh_margin: float,
) -> Credentials | None:
    """The credentials the keyword arguments describe (shared with AsyncClient)."""
    if api_key is not None and (email is not None or token is not None):
        raise ValueError("pass either api_key, or email/password (or a session token), not both")
    if api_key is not None:
        return ApiKeyCredentials(api_key)
    if (email is None) != (password is None) and token is None:
        raise ValueError("email and password go together")
    if email is not None or token is not None:
        return SessionCredentials(
            email=email, password=password, token=token, refresh_margin=refresh_margin
        )
    return None


class Client:
    """A synchronous graphgate client.

    Args:
        url: ``grpc://host:port`` (plaintext), ``grpcs://host[:port]`` (TLS) or
            ``host:port`` (see :mod:`graphgate.clients.target`).
        api_key: an API key (or the operator key), sent as ``x-api-key``.
        email, password: sign in lazily on the first call; the session is
            refreshed before it expires and renewed by signing in again.
        token: a saved session token (``graphgate login``), refreshed while it lives.
        tls: override TLS: True, False, a CA bundle path, or ``grpc.ChannelCredentials``.
        timeout: default deadline of unary calls, seconds (None: no deadline).
        retry: the retry policy for calls that do not write.
        refresh_margin: renew a session this many seconds before it expires.

    Without credentials only public calls work (``auth.register``,
    ``auth.login``, password policy); ``auth.login`` then signs the client in.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: TlsOption = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self.url = url
        self._transport = Transport(
            resolve_target(url, tls),
            credentials=credentials_from(
                api_key=api_key,
                email=email,
                password=password,
                token=token,
                refresh_margin=refresh_margin,
            ),
            retry=retry or RetryPolicy(),
            timeout=timeout,
        )
        #: Accounts and sessions.
        self.auth = Auth(self._transport)
        #: The caller's API keys.
        self.keys = Keys(self._transport)
        #: Graphs, with ``.members`` and ``.subgraphs``.
        self.graphs = Graphs(self._transport)
        #: Data files into graphs.
        self.uploads = Uploads(self._transport)
        #: Operator calls (with the operator key as ``api_key``).
        self.operator = Operator(self._transport)

    @classmethod
    def from_settings(cls, settings: ClientSettings, **kwargs: object) -> Client:
        """A client from :func:`graphgate.clients.config.load_client_settings`
        (environment and config file), as the ``graphgate`` command makes it."""
        return cls(settings.url, **settings.client_kwargs(), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, **kwargs: object) -> Client:
        """A client configured like the ``graphgate`` command: ``GRAPHGATE_URL``,
        ``GRAPHGATE_API_KEY``, else the config file (``graphgate login``,
        ``graphgate keys create --save``). ``kwargs`` go to the constructor."""
        from graphgate.clients.config import load_client_settings

        return cls.from_settings(load_client_settings(), **kwargs)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (calls in flight are cancelled)."""
        self._transport.close()

    @property
    def session(self) -> Session | None:
        """The current session (None with an API key or before the first call)."""
        creds = self._transport.credentials
        if isinstance(creds, SessionCredentials) and creds.token:
            return Session(creds.token, creds.expires_at_utc, 0)
        return None

    def query(
        self,
        graph_id: str,
        cypher: str,
        params: Mapping[str, object] | None = None,
        *,
        timeout: float | None = None,
        row_limit: int = 0,
    ) -> QueryResult:
        """Run one Cypher statement and return its rows (up to the server's limit).

        ``params`` fill the statement's ``$names``; see :mod:`graphgate.clients.values`
        for the Python types accepted. ``timeout`` (seconds) bounds both the
        call and the engine's work. A query may write, so it is never retried.

        Raises :class:`~graphgate.clients.QueryRefused` when the firewall
        refuses the statement for the caller's role.
        """
        op = queries.execute(graph_id, cypher, params, timeout=timeout, row_limit=row_limit)
        return self._transport.run(op, timeout=timeout)

    def stream(
        self,
        graph_id: str,
        cypher: str,
        params: Mapping[str, object] | None = None,
        *,
        timeout: float | None = None,
        row_limit: int = 0,
    ) -> RowStream:
        """Run one statement and iterate its rows as they arrive, in bounded memory.

        Use ``with client.stream(...) as rows:`` (or ``close()``) to cancel the
        server's work if you stop early. ``timeout`` defaults to none for streams.
        """
        request = queries.stream_request(
            graph_id, cypher, params, timeout=timeout, row_limit=row_limit
        )
        request_id = new_request_id()
        transport = self._transport
        return RowStream(
            lambda: transport.start_stream(queries.STREAM, request, request_id, timeout=timeout),
            request_id,
        )

    def analyze(self, cypher: str) -> Analysis:
        """Classify a statement (read, write, schema...) without running it."""
        return self._transport.run(queries.analyze(cypher))
