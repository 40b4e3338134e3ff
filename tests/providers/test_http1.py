"""The pooled HTTP/1.1 upstream client, over real sockets on 127.0.0.1.

Most cases use a tiny asyncio server scripted byte by byte, so faults (stale keep-alive
connections, drops mid-body, stalls, garbage) happen exactly where the test puts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from nuri.catalog import Deployment
from nuri.errors import UpstreamError, UpstreamTimeout
from nuri.providers.http1 import ConnectionPool, Timeouts, UpstreamConnectionError
from nuri.providers.openai_compatible import OpenAICompatibleProvider
from support.upstream_server import RunningUpstream, free_port

OK_BODY = b'{"ok": true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)
CHAT = b'{"messages": [{"role": "user", "content": "hi"}]}'

Handler = Callable[["ScriptedServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request (head and Content-Length body), or None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


class ScriptedServer:
    """An asyncio server whose per-connection behaviour is the test's `handler` coroutine."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0      # accepted so far
        self.current = 0          # open right now
        self.peak = 0
        self.requests: list[bytes] = []
        self.closed_by_client = 0

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def request(self, reader: asyncio.StreamReader) -> bytes | None:
        req = await read_request(reader)
        if req is not None:
            self.requests.append(req)
        return req

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            await self.handler(self, reader, writer)
        except ConnectionError:
            pass
        finally:
            self.current -= 1
            writer.close()


async def keep_alive(server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await server.request(reader) is not None:
        writer.write(OK)
    server.closed_by_client += 1


def pool_for(server: ScriptedServer, **kwargs: object) -> ConnectionPool:
    return ConnectionPool(server.url, headers={"Content-Type": "application/json"}, **kwargs)  # type: ignore[arg-type]


async def post(pool: ConnectionPool) -> bytes:
    resp = await pool.request("POST", "/chat/completions", CHAT)
    assert resp.status == 200
    return await resp.read()


async def test_keep_alive_uses_one_connection_for_sequential_requests():
    async with ScriptedServer(keep_alive) as server:
        pool = pool_for(server)
        for _ in range(25):
            assert await post(pool) == OK_BODY
        assert server.connections == 1 and pool.opened == 1
        await pool.close()


async def test_request_line_host_header_and_body():
    async with ScriptedServer(keep_alive) as server:
        pool = ConnectionPool(server.url, headers={"Authorization": "Bearer k"})
        await post(pool)
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
        assert f"Host: 127.0.0.1:{server.port}".encode() in lines
        assert b"Authorization: Bearer k" in lines
        assert f"Content-Length: {len(CHAT)}".encode() in lines
        assert body == CHAT
        await pool.close()


async def test_headers_are_case_insensitive():
    async def handler(server, reader, writer):
        await server.request(reader)
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\ncontent-TYPE: text/plain\r\nRETRY-AFTER: 3\r\n"
                     b"Content-Length: 4\r\n\r\nslow")

    async with ScriptedServer(handler) as server:
        pool = pool_for(server)
        resp = await pool.request("POST", "/chat/completions", CHAT)
        assert resp.status == 429
        assert resp.headers.get("Retry-After") == "3" and resp.headers["Content-Type"] == "text/plain"
        assert "content-type" in resp.headers and resp.headers.get("x-missing") is None
        assert await resp.read() == b"slow"
        await pool.close()


async def test_real_upstream_reuses_connection_and_streams():
    with RunningUpstream() as upstream:
        pool = ConnectionPool(upstream.base_url, headers={"Content-Type": "application/json"})
        for _ in range(10):
            assert b"chat.completion" in await post(pool)
        resp = await pool.request("POST", "/chat/completions", b'{"stream": true, "messages": []}')
        body = b"".join([chunk async for chunk in resp])
        assert body.endswith(b"data: [DONE]\n\n")
        assert pool.opened == 1
        await pool.close()


async def test_concurrency_limit_is_respected():
    async def slow(server, reader, writer):
        while await server.request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(OK)

    async with ScriptedServer(slow) as server:
        pool = pool_for(server, max_connections=2)
        started = time.perf_counter()
        results = await asyncio.gather(*(post(pool) for _ in range(6)))
        assert all(r == OK_BODY for r in results)
        assert server.peak <= 2 and pool.opened == 2
        assert time.perf_counter() - started >= 0.14    # three rounds of two
        await pool.close()


async def test_idle_connection_closed_by_server_is_not_reused():
    async def one_per_connection(server, reader, writer):
        await server.request(reader)
        writer.write(OK)
        await writer.drain()

    async with ScriptedServer(one_per_connection) as server:
        pool = pool_for(server)
        await post(pool)
        await asyncio.sleep(0.05)        # the close reaches the client while the connection is idle
        assert pool.open_connections == 0
        await post(pool)
        assert server.connections == 2
        await pool.close()


async def test_stale_connection_is_retried_once_on_a_fresh_one():
    async def close_on_second_request(server, reader, writer):
        await server.request(reader)
        writer.write(OK)
        await server.request(reader)      # read it, then hang up without answering

    async with ScriptedServer(close_on_second_request) as server:
        pool = pool_for(server)
        await post(pool)
        assert await post(pool) == OK_BODY
        assert server.connections == 2 and len(server.requests) == 3
        await pool.close()


async def test_fresh_connection_failing_before_reply_is_not_retried():
    async def hang_up(server, reader, writer):
        await server.request(reader)

    async with ScriptedServer(hang_up) as server:
        pool = pool_for(server)
        with pytest.raises(UpstreamConnectionError):
            await post(pool)
        assert server.connections == 1 and pool.open_connections == 0
        await pool.close()


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
])
async def test_connection_close_or_http10_is_not_reused(reply):
    async def handler(server, reader, writer):
        while await server.request(reader) is not None:
            writer.write(reply)

    async with ScriptedServer(handler) as server:
        pool = pool_for(server)
        for _ in range(2):
            resp = await pool.request("POST", "/chat/completions", CHAT)
            assert await resp.read() == b"ok"
        assert server.connections == 2
        await pool.close()


async def test_body_until_close_is_read_whole():
    async def handler(server, reader, writer):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")

    async with ScriptedServer(handler) as server:
        pool = pool_for(server)
        resp = await pool.request("POST", "/chat/completions", CHAT)
        assert await resp.read() == b"until the end"
        await pool.close()


async def test_chunked_stream_yields_each_chunk_as_it_arrives():
    go = asyncio.Event()

    async def handler(server, reader, writer):
        while await server.request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"b\r\ndata: one\n\n\r\n")
            await go.wait()
            writer.write(b"b\r\ndata: two\n\n\r\n")
            writer.write(b"0\r\n\r\n")
            go.clear()

    async with ScriptedServer(handler) as server:
        pool = pool_for(server)
        resp = await pool.request("POST", "/chat/completions", CHAT)
        stream = aiter(resp)
        # The second chunk is only sent after we got the first: buffering would deadlock here.
        assert await asyncio.wait_for(anext(stream), 2) == b"data: one\n\n"
        go.set()
        rest = b"".join([chunk async for chunk in stream])
        assert rest == b"data: two\n\n" and resp.complete
        go.set()
        await post_stream_again(pool)
        assert server.connections == 1      # a fully read stream leaves the connection reusable
        await pool.close()


async def post_stream_again(pool: ConnectionPool) -> None:
    resp = await pool.request("POST", "/chat/completions", CHAT)
    assert b"data: one" in await resp.read()


async def test_abandoned_stream_closes_its_connection():
    async def endless(server, reader, writer):
        while await server.request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                writer.write(b"6\r\ndata:x\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        server.closed_by_client += 1

    async with ScriptedServer(endless) as server:
        pool = pool_for(server)
        async with await pool.request("POST", "/chat/completions", CHAT) as resp:
            assert (await anext(aiter(resp))).startswith(b"data:x")
        assert pool.open_connections == 0
        for _ in range(100):
            if server.current == 0:
                break
            await asyncio.sleep(0.01)
        assert server.current == 0           # the upstream saw the close (and can stop generating)
        await pool.close()


async def test_close_with_linger_keeps_the_connection_when_the_message_ends_in_time():
    go = asyncio.Event()

    async def done_then_terminator(server, reader, writer):
        while await server.request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"e\r\ndata: [DONE]\n\n\r\n")
            await go.wait()
            writer.write(b"0\r\n\r\n")
            go.clear()

    async with ScriptedServer(done_then_terminator) as server:
        pool = pool_for(server)
        resp = await pool.request("POST", "/chat/completions", CHAT)
        assert await anext(aiter(resp)) == b"data: [DONE]\n\n" and not resp.complete
        resp.close(linger=1.0)
        go.set()
        for _ in range(100):
            if resp.complete:
                break
            await asyncio.sleep(0.01)
        assert resp.complete and pool.open_connections == 1
        resp = await pool.request("POST", "/chat/completions", CHAT)   # reuses the same connection
        await anext(aiter(resp))
        resp.close(linger=0.1)                 # this time the terminator never comes in time
        await asyncio.sleep(0.3)
        assert pool.open_connections == 0
        assert server.connections == 1
        await pool.close()


async def test_read_timeout_raises_and_closes_the_connection():
    async def silent(server, reader, writer):
        await server.request(reader)
        await asyncio.sleep(5)

    async with ScriptedServer(silent) as server:
        pool = pool_for(server, timeouts=Timeouts(connect=1, read=0.2, total=10))
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await post(pool)
        assert 0.15 < time.perf_counter() - started < 2
        assert pool.open_connections == 0
        await pool.close()


async def test_read_timeout_mid_body():
    async def stall(server, reader, writer):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await asyncio.sleep(5)

    async with ScriptedServer(stall) as server:
        pool = pool_for(server, timeouts=Timeouts(connect=1, read=0.2, total=10))
        resp = await pool.request("POST", "/chat/completions", CHAT)
        stream = aiter(resp)
        assert await anext(stream) == b"abc"
        with pytest.raises(TimeoutError):
            await anext(stream)
        assert pool.open_connections == 0
        await pool.close()


async def test_total_timeout_bounds_a_trickling_reply():
    async def trickle(server, reader, writer):
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"1\r\nx\r\n")
            await asyncio.sleep(0.05)

    async with ScriptedServer(trickle) as server:
        pool = pool_for(server, timeouts=Timeouts(connect=1, read=1, total=0.3))
        started = time.perf_counter()
        resp = await pool.request("POST", "/chat/completions", CHAT)
        with pytest.raises(TimeoutError):
            await resp.read()
        assert time.perf_counter() - started < 2
        await pool.close()


async def test_connection_refused_is_a_connection_error():
    pool = ConnectionPool(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(UpstreamConnectionError) as info:
        await pool.request("POST", "/chat/completions", CHAT)
    assert isinstance(info.value, ConnectionError)
    assert pool.open_connections == 0
    await pool.close()


@pytest.mark.parametrize("partial", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
])
async def test_drop_mid_response_is_a_connection_error(partial):
    async def drop(server, reader, writer):
        await server.request(reader)
        writer.write(partial)
        await writer.drain()

    async with ScriptedServer(drop) as server:
        pool = pool_for(server)
        resp = await pool.request("POST", "/chat/completions", CHAT)
        with pytest.raises(UpstreamConnectionError):
            await resp.read()
        assert pool.open_connections == 0
        await pool.close()


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
async def test_malformed_response_is_a_connection_error(garbage):
    async def handler(server, reader, writer):
        await server.request(reader)
        writer.write(garbage)
        await asyncio.sleep(1)

    async with ScriptedServer(handler) as server:
        pool = pool_for(server)
        with pytest.raises(UpstreamConnectionError):
            await post(pool)
        assert pool.open_connections == 0
        await pool.close()


def test_under_uvloop():
    """uvloop is the production loop: the same pool must work there."""
    async def scenario(base_url: str) -> None:
        pool = ConnectionPool(base_url, headers={"Content-Type": "application/json"})
        for _ in range(5):
            assert b"chat.completion" in await post(pool)
        resp = await pool.request("POST", "/chat/completions", b'{"stream": true, "messages": []}')
        chunks = [chunk async for chunk in resp]
        assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
        assert pool.opened == 1
        refused = ConnectionPool(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(UpstreamConnectionError):
            await refused.request("GET", "/")
        await pool.close()

    with RunningUpstream() as upstream:
        uvloop.run(scenario(upstream.base_url))


def _deployment(base_url: str) -> Deployment:
    return Deployment(id="up", provider="openai_compatible", model="test-model", base_url=base_url,
                      api_key="sk-test", jurisdiction="KR", hosting="on_prem",
                      timeouts={"connect": 1, "read": 0.3, "total": 5})


async def test_provider_maps_transport_failures_to_retryable_upstream_errors():
    refused = OpenAICompatibleProvider(_deployment(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(UpstreamError) as info:
        await refused.chat({"messages": [{"role": "user", "content": "hi"}]})
    assert info.value.retryable and "connection failed" in info.value.message
    await refused.close()

    async def silent(server, reader, writer):
        await server.request(reader)
        await asyncio.sleep(5)

    async with ScriptedServer(silent) as server:
        provider = OpenAICompatibleProvider(_deployment(server.url))
        with pytest.raises(UpstreamTimeout):
            await provider.chat({"messages": [{"role": "user", "content": "hi"}]})
        assert b"Authorization: Bearer sk-test" in server.requests[0]
        await provider.close()


async def test_provider_streams_and_reuses_its_connection():
    with RunningUpstream() as upstream:
        upstream.state.chunk_chars = 4
        provider = OpenAICompatibleProvider(_deployment(upstream.base_url))
        body = {"stream": True, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(5):
            events = [e async for e in provider.stream_chat(body)]
            text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
            assert text == upstream.state.reply
            await asyncio.sleep(0.05)     # let the HTTP message end after [DONE]
        assert provider._pool is not None and provider._pool.opened == 1
        await provider.close()
