"""Resource namespaces of the clients (``client.auth``, ``client.keys``, ...).

Each module builds its calls once, as :class:`~graphgate.clients.transport.Op`
values, and offers them twice: a sync class for :class:`~graphgate.clients.Client`
and an ``Async…`` class for :class:`~graphgate.clients.AsyncClient`, with the
same methods.
"""
