"""The chain runs its links as if each wrapped the next, over a real channel.

A bare grpc.aio server with recording links: what each link sees and in
which order, for unary and streaming calls, refusals, replaced errors,
selectors and a client that goes away mid-stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc import aio

from graphgate.interceptors.chain import Chain, Context, Link

SERVICE = "test.Chain"


class Recording(Link):
    """Records its hooks in ``log``; refuses or replaces errors when told to."""

    def __init__(
        self,
        name: str,
        log: list[str],
        *,
        refuse: bool = False,
        replace: bool = False,
        selector: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(selector=selector or (lambda _: True))
        self.name = name
        self.log = log
        self.refuse = refuse
        self.replace = replace

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        self.log.append(f"{self.name}.enter")
        if self.refuse:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"refused by {self.name}")

    async def respond(self, context: Context) -> None:
        self.log.append(f"{self.name}.respond")

    async def exit(self, context: Context, error: BaseException | None) -> None:
        self.log.append(f"{self.name}.exit({type(error).__name__ if error else 'ok'})")
        if self.replace and error is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"replaced by {self.name}")


class ExitOnly(Link):
    """Overrides nothing but ``exit``: the other hooks must not matter."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def exit(self, context: Context, error: BaseException | None) -> None:
        self.log.append(f"exit-only.exit({type(error).__name__ if error else 'ok'})")


class Handlers:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.stream_ended = asyncio.Event()

    async def echo(self, request: bytes, context: Context) -> bytes:
        self.log.append("handler")
        if request == b"fail":
            raise ValueError("handler failed")
        return request

    async def count(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        self.log.append("handler")
        try:
            for i in range(int(request)):
                self.log.append(f"item {i}")
                yield str(i).encode()
                await asyncio.sleep(0.01)
        finally:
            self.stream_ended.set()

    async def total(self, requests: AsyncIterator[bytes], context: Context) -> bytes:
        self.log.append("handler")
        return str(sum([int(r) async for r in requests])).encode()


async def serve(links: list[Link], handlers: Handlers) -> tuple[aio.Server, int]:
    server = aio.server(interceptors=[Chain(links)])
    generic = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(handlers.echo),
            "Count": grpc.unary_stream_rpc_method_handler(handlers.count),
            "Total": grpc.stream_unary_rpc_method_handler(handlers.total),
        },
    )
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
def log() -> list[str]:
    return []


async def call(
    links: list[Link], handlers: Handlers, method: str, body: Any
) -> tuple[Any, grpc.StatusCode, str]:
    server, port = await serve(links, handlers)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                if method == "Echo":
                    answer: Any = await channel.unary_unary(f"/{SERVICE}/Echo")(body)
                elif method == "Count":
                    items = channel.unary_stream(f"/{SERVICE}/Count")(body)
                    answer = [item async for item in items]
                else:
                    answer = await channel.stream_unary(f"/{SERVICE}/Total")(iter(body))
            except aio.AioRpcError as error:
                return None, error.code(), error.details() or ""
            return answer, grpc.StatusCode.OK, ""
    finally:
        await server.stop(None)


async def test_hooks_run_nested_outermost_first(log: list[str]) -> None:
    links: list[Link] = [Recording("a", log), ExitOnly(log), Recording("b", log)]
    answer, code, _ = await call(links, Handlers(log), "Echo", b"hi")
    assert (answer, code) == (b"hi", grpc.StatusCode.OK)
    assert log == [
        "a.enter",
        "b.enter",
        "handler",
        "b.respond",
        "b.exit(ok)",
        "exit-only.exit(ok)",
        "a.respond",
        "a.exit(ok)",
    ]


async def test_a_refusal_stops_the_call_and_every_entered_link_exits(log: list[str]) -> None:
    links: list[Link] = [
        Recording("a", log),
        Recording("b", log, refuse=True),
        Recording("c", log),
    ]
    answer, code, details = await call(links, Handlers(log), "Echo", b"hi")
    assert (answer, code, details) == (None, grpc.StatusCode.PERMISSION_DENIED, "refused by b")
    assert log == ["a.enter", "b.enter", "b.exit(AbortError)", "a.exit(AbortError)"]


async def test_an_exit_may_replace_the_error_for_the_links_outside_it(log: list[str]) -> None:
    links: list[Link] = [Recording("a", log), Recording("b", log, replace=True)]
    _, code, details = await call(links, Handlers(log), "Echo", b"fail")
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "replaced by b")
    assert log == ["a.enter", "b.enter", "handler", "b.exit(ValueError)", "a.exit(AbortError)"]


async def test_a_link_applies_only_to_the_methods_it_selects(log: list[str]) -> None:
    links: list[Link] = [
        Recording("a", log),
        Recording("streams-only", log, selector=lambda method: method.endswith("/Count")),
    ]
    await call(links, Handlers(log), "Echo", b"hi")
    assert not any(entry.startswith("streams-only") for entry in log)
    log.clear()
    await call(links, Handlers(log), "Count", b"1")
    assert "streams-only.enter" in log


async def test_a_stream_responds_before_its_first_item_and_exits_after_its_last(
    log: list[str],
) -> None:
    links: list[Link] = [Recording("a", log), Recording("b", log)]
    answer, code, _ = await call(links, Handlers(log), "Count", b"2")
    assert (answer, code) == ([b"0", b"1"], grpc.StatusCode.OK)
    assert log == [
        "a.enter",
        "b.enter",
        "handler",
        "item 0",
        "b.respond",
        "a.respond",
        "item 1",
        "b.exit(ok)",
        "a.exit(ok)",
    ]


async def test_a_client_streaming_call_enters_without_a_request(log: list[str]) -> None:
    seen: list[Any] = []

    class Peek(Link):
        async def enter(self, request: Any, context: Context, full_method: str) -> None:
            seen.append(request)

    answer, code, _ = await call([Peek()], Handlers(log), "Total", [b"1", b"2", b"3"])
    assert (answer, code, seen) == (b"6", grpc.StatusCode.OK, [None])


async def test_a_client_that_goes_away_mid_stream_still_gets_every_exit(log: list[str]) -> None:
    handlers = Handlers(log)
    links: list[Link] = [Recording("a", log), Recording("b", log)]
    server, port = await serve(links, handlers)
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = channel.unary_stream(f"/{SERVICE}/Count")(b"1000")
            assert await stream.read() == b"0"
            stream.cancel()
        await asyncio.wait_for(handlers.stream_ended.wait(), 5)
        for _ in range(100):
            if "a.exit" in " ".join(log):
                break
            await asyncio.sleep(0.02)
    finally:
        await server.stop(None)
    exits = [entry for entry in log if ".exit(" in entry]
    assert [entry.split("(")[0] for entry in exits] == ["b.exit", "a.exit"]
    assert all("ok" not in entry for entry in exits), exits
