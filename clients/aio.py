"""The asyncio :class:`AsyncClient`: the same surface as :class:`~graphgate.clients.Client`.

::

    from graphgate.clients import AsyncClient

    async with AsyncClient("grpc://127.0.0.1:50051", api_key="gg_...") as client:
        result = await client.query(graph_id, "MATCH (p:Person) RETURN p.name")
        async for row in client.stream(graph_id, "MATCH (p:Person) RETURN p"):
            ...

Make it inside the event loop that uses it (the channel binds to that loop on
the first call).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from graphgate.clients.auth import DEFAULT_REFRESH_MARGIN, SessionCredentials
from graphgate.clients.client import credentials_from
from graphgate.clients.config import ClientSettings
from graphgate.clients.models import Analysis, Session
from graphgate.clients.resources import queries
from graphgate.clients.resources.auth import AsyncAuth
from graphgate.clients.resources.graphs import AsyncGraphs
from graphgate.clients.resources.keys import AsyncKeys
from graphgate.clients.resources.operator import AsyncOperator
from graphgate.clients.resources.uploads import AsyncUploads
from graphgate.clients.results import AsyncRowStream, QueryResult
from graphgate.clients.retry import RetryPolicy
from graphgate.clients.target import DEFAULT_URL, TlsOption, resolve_target
from graphgate.clients.transport import AsyncTransport, new_request_id


class AsyncClient:
    """An asyncio graphgate client; arguments as for :class:`~graphgate.clients.Client`.

    Safe to share between tasks of one event loop; sessions are renewed by
    one task at a time (an ``asyncio.Lock``), the others wait for its result.
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
        self._transport = AsyncTransport(
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
        self.auth = AsyncAuth(self._transport)
        #: The caller's API keys.
        self.keys = AsyncKeys(self._transport)
        #: Graphs, with ``.members`` and ``.subgraphs``.
        self.graphs = AsyncGraphs(self._transport)
        #: Data files into graphs.
        self.uploads = AsyncUploads(self._transport)
        #: Operator calls (with the operator key as ``api_key``).
        self.operator = AsyncOperator(self._transport)

    @classmethod
    def from_settings(cls, settings: ClientSettings, **kwargs: object) -> AsyncClient:
        """A client from :func:`graphgate.clients.config.load_client_settings`."""
        return cls(settings.url, **settings.client_kwargs(), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, **kwargs: object) -> AsyncClient:
        """A client configured like the ``graphgate`` command: ``GRAPHGATE_URL``,
        ``GRAPHGATE_API_KEY``, else the config file (``graphgate login``,
        ``graphgate keys create --save``). ``kwargs`` go to the constructor."""
        from graphgate.clients.config import load_client_settings

        return cls.from_settings(load_client_settings(), **kwargs)

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled)."""
        await self._transport.close()

    @property
    def session(self) -> Session | None:
        """The current session (None with an API key or before the first call)."""
        creds = self._transport.credentials
        if isinstance(creds, SessionCredentials) and creds.token:
            return Session(creds.token, creds.expires_at_utc, 0)
        return None

    async def query(
        self,
        graph_id: str,
        cypher: str,
        params: Mapping[str, object] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
        row_limit: int = 0,
    ) -> QueryResult:
        """Run one Cypher statement and return its rows (see :meth:`Client.query`)."""
        op = queries.execute(graph_id, cypher, params, timeout=timeout, row_limit=row_limit)
        return await self._transport.run(op, timeout=timeout)

    def stream(
        self,
        graph_id: str,
        cypher: str,
        params: Mapping[str, object] | None = None,
        *,
        timeout: float | None = None,
        row_limit: int = 0,
    ) -> AsyncRowStream:
        """Rows as they arrive: ``async for row in client.stream(...)``.

        The call starts on the first iteration; ``async with`` (or ``aclose()``)
        cancels it on the server if you stop early.
        """
        request = queries.stream_request(
            graph_id, cypher, params, timeout=timeout, row_limit=row_limit
        )
        request_id = new_request_id()
        transport = self._transport
        return AsyncRowStream(
            lambda: transport.start_stream(queries.STREAM, request, request_id, timeout=timeout),
            request_id,
        )

    async def analyze(self, cypher: str) -> Analysis:
        """Classify a statement without running it."""
        return await self._transport.run(queries.analyze(cypher))
