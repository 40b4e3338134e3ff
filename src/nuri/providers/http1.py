"""A small pooled HTTP/1.1 client for calling upstreams.

Why not aiohttp: the gateway's overhead budget is about a millisecond, and a general-purpose
client spends a few hundred microseconds per request on machinery the gateway does not use
(request/response object graphs, cookie jar, URL objects, per-request timers). Upstream calls are
always the same shape - a JSON body POSTed to one base URL over keep-alive connections - so a
thin layer over `asyncio.Protocol` and `httptools.HttpResponseParser` (the llhttp parser uvicorn
uses) does the job at roughly half the cost. Measured on the development machine (client CPU per
request under uvloop, keep-alive, a 0.5 KB JSON body): this pool 55-62 us, aiohttp 110-190 us,
httpx 1,000-1,500 us; TLS adds about 25 us, a CONNECT proxy nothing once the tunnel is open.

What it does:
  * one `ConnectionPool` per base URL (`http://` or `https://`, optionally with a path prefix such
    as `/v1`); keep-alive connections are reused last-in-first-out, at most `max_connections`
    are open at once and callers wait for a free one beyond that;
  * a connection the server closed while idle is dropped as soon as the loop notices; if a
    request on a reused connection still fails before any response byte arrived (the close
    crossed our request on the wire), it is sent once more on a fresh connection;
  * `Connection: close` or an HTTP/1.0 reply means the connection is not reused;
  * through a proxy (`proxy="http://[user:pass@]host:port"`): an `https://` upstream is reached
    through a CONNECT tunnel with TLS to the upstream inside it (the proxy sees only the host name),
    an `http://` one by sending absolute-form requests to the proxy; TLS uses the caller's
    `ssl.SSLContext` (a CA bundle, a client certificate for mutual TLS) or the system's defaults;
  * timeouts: `connect` (TCP + proxy CONNECT + TLS), `read` (no byte for that long while waiting) and `total`
    (the whole exchange, body included); expiry raises `TimeoutError` and closes the connection;
  * every transport failure (refused, reset, closed mid-response, unparsable reply) raises
    `UpstreamConnectionError`, a `ConnectionError`.

A `Response` is returned once the status line and headers are in. Its body is read whole with
`await resp.read()` or consumed as it arrives with `async for chunk in resp`. The connection goes
back to the pool as soon as the whole message has arrived; a response abandoned before that
(`resp.close()`, an exception, a cancelled task) closes its connection, because unread bytes
would corrupt the next exchange on it (`resp.close(linger=...)` lets a stream whose content is
over finish its framing in the background instead). HEAD requests, pipelining and request bodies streamed
from an iterator are not supported: upstream calls do not need them.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

import httptools

# A stream consumer that falls this far behind pauses the socket instead of buffering more.
_PAUSE_ABOVE = 1 << 20
# A proxy's reply to CONNECT is a status line and a few headers; more than this is not a proxy.
_MAX_PROXY_REPLY = 16 << 10


class UpstreamConnectionError(ConnectionError):
    """The connection failed or the reply could not be understood; safe to retry elsewhere."""


class ResponseTooLarge(Exception):
    """A body passed the caller's cap; the connection is closed rather than read to the end."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: to open a connection, between bytes while waiting, for the whole exchange."""

    connect: float = 5.0
    read: float = 60.0
    total: float = 600.0


class Headers(dict[str, str]):
    """Response headers keyed by lower-case name, so lookups ignore case as HTTP requires.

    A header sent several times is kept once, its values joined with ", ".
    """

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


class Response:
    """One reply: `status` and `headers` are set; the body is read with `read()` or `async for`."""

    __slots__ = ("_buffered", "_chunks", "_complete", "_conn", "_deadline", "_discard", "_error", "_linger",
                 "_loop", "_read_timeout", "_received", "_until_eof", "_waiter", "headers", "status")

    def __init__(self, conn: _Connection, loop: asyncio.AbstractEventLoop, read_timeout: float,
                 deadline: float) -> None:
        self.status = 0
        self.headers = Headers()
        self._conn: _Connection | None = conn   # None once the message is complete or failed
        self._loop = loop
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._received = False     # any byte of this reply arrived (decides the stale-connection retry)
        self._until_eof = False    # no length and not chunked: the body ends when the server closes
        self._discard = False      # closed with linger: drop body bytes until the message ends
        self._linger: asyncio.TimerHandle | None = None

    @property
    def complete(self) -> bool:
        """Whether the whole message has arrived."""
        return self._complete

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (waits for the end of the message).

        With `limit`, a body announced or found to be longer raises `ResponseTooLarge` (and closes
        the connection) as soon as that is known, so a faulty upstream cannot fill the memory.
        """
        try:
            if limit is not None:
                announced = self.headers.get("content-length")
                if announced is not None and announced.isdigit() and int(announced) > limit:
                    raise ResponseTooLarge(f"the reply body announces {announced} bytes, over the cap of {limit}")
            while not self._complete:
                await self._wait()
                if limit is not None and self._buffered > limit:
                    raise ResponseTooLarge(f"the reply body exceeds the cap of {limit} bytes")
        except BaseException:
            self.close()
            raise
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return body

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        """Whatever body bytes have arrived since the last call, waiting only when there are none."""
        chunks = self._chunks
        try:
            while not chunks:
                if self._complete:
                    raise StopAsyncIteration
                await self._wait()
        except StopAsyncIteration:
            raise
        except BaseException:
            self.close()
            raise
        self._buffered = 0
        if len(chunks) == 1:
            return chunks.popleft()
        data = b"".join(chunks)
        chunks.clear()
        return data

    def close(self, linger: float = 0.0) -> None:
        """Give up on the rest of the body; the connection is closed unless the message was complete.

        With `linger`, the rest of the message gets that many seconds to arrive in the background
        (and is discarded), so the connection can still be reused. Meant for a stream whose content
        is known to be over (SSE `[DONE]`) while the HTTP framing may still be on its way; a
        consumer that gives up mid-content should close at once so the upstream stops working.
        """
        conn = self._conn
        if conn is None:
            return
        if linger > 0 and self._error is None:
            self._discard = True
            self._chunks.clear()
            self._buffered = 0
            if self._linger is None:
                self._linger = self._loop.call_later(linger, self.close)
            conn.resume()
            return
        if self._linger is not None:
            self._linger.cancel()
        self._conn = None
        conn.response = None
        conn.close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- driven by the connection ------------------------------------------------------------
    async def _wait(self) -> None:
        """Sleep until the connection has news for us, or raise when the timeouts expire."""
        if self._error is not None:
            raise self._error
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        loop = self._loop
        fut = self._waiter = loop.create_future()
        timer = loop.call_at(min(loop.time() + self._read_timeout, self._deadline), self._time_out)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _time_out(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return    # news arrived in the same loop iteration: not a timeout
        if self._loop.time() >= self._deadline:
            self._fail(TimeoutError("upstream exchange exceeded the total timeout"))
        else:
            self._fail(TimeoutError(f"upstream sent nothing for {self._read_timeout:g}s"))

    def _fail(self, exc: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = exc
            self.close()
        self._wake()

    def _on_body(self, data: bytes) -> None:
        if self._discard:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        waiter = self._waiter
        if waiter is None or waiter.done():
            if self._buffered > _PAUSE_ABOVE and self._conn is not None:
                self._conn.pause()
        else:
            waiter.set_result(None)

    def _on_complete(self) -> None:
        self._complete = True
        self._conn = None
        if self._linger is not None:
            self._linger.cancel()
        self._wake()


class _Connection(asyncio.Protocol):
    """One socket and its parser; feeds the response in flight, if any."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self.counted = False    # holds one of the pool's slots
        self.served = 0         # requests sent on this connection so far
        self.paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:      # nothing asked for: the server is confused, do not trust the socket
            self.close()
            return
        resp._received = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError, HttpParserUpgrade
            if self.response is not None:
                resp._fail(UpstreamConnectionError(f"malformed response from upstream: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._drop(self)
        resp = self.response
        if resp is not None:
            self.response = None
            if resp.status and resp._until_eof:
                resp._on_complete()
            else:
                err = UpstreamConnectionError(
                    "upstream closed the connection before the response was complete"
                    if resp._received else "upstream closed the connection without answering")
                if exc is not None:
                    err.__cause__ = exc
                resp._fail(err)

    # -- httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        resp = self.response
        if resp is None:
            raise UpstreamConnectionError("response bytes with no request in flight")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = resp.headers
        previous = dict.get(headers, key)
        dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")

    def on_headers_complete(self) -> None:
        resp = self.response
        if resp is None:
            raise UpstreamConnectionError("response bytes with no request in flight")
        status = self.parser.get_status_code()
        if status < 200:
            return    # an interim 1xx reply; the real one follows
        resp.status = status
        headers = resp.headers
        resp._until_eof = (status not in (204, 304) and "content-length" not in headers
                           and "transfer-encoding" not in headers)
        resp._wake()

    def on_body(self, body: bytes) -> None:
        resp = self.response
        if resp is not None:
            resp._on_body(body)

    def on_message_complete(self) -> None:
        resp = self.response
        if resp is None:
            return
        if resp.status == 0:      # end of a 1xx reply: forget its headers, wait for the real one
            resp.headers.clear()
            return
        self.response = None
        resp._on_complete()
        self.resume()     # a slow reader may have paused the socket just before the end
        if self.parser.should_keep_alive():
            self.pool._release(self)
        else:
            self.close()

    # -- used by the pool -------------------------------------------------------------------------
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self.pool._drop(self)

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()


class _Tunnel(asyncio.Protocol):
    """The proxy side of a CONNECT: resolves `answered` once the proxy said 2xx, fails otherwise."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answered: asyncio.Future[None] = loop.create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self._buffer += data
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            if len(self._buffer) > _MAX_PROXY_REPLY:
                self.answered.set_exception(UpstreamConnectionError("the proxy's reply to CONNECT is too long"))
            return
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].startswith("2"):
            self.answered.set_exception(UpstreamConnectionError(f"the proxy refused the tunnel: {status[:100]!r}"))
        elif rest:
            self.answered.set_exception(UpstreamConnectionError("the proxy sent bytes before the TLS handshake"))
        else:
            self.answered.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(UpstreamConnectionError("the proxy closed the connection during CONNECT"))


def _proxy_authorization(proxy: SplitResult) -> str:
    """A `Proxy-Authorization` header line for credentials in the proxy URL, else nothing."""
    if proxy.username is None:
        return ""
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return f"Proxy-Authorization: Basic {base64.b64encode(pair).decode('ascii')}\r\n"


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one base URL.

    `headers` are sent with every request (e.g. Content-Type and Authorization). `tls` is the context
    for an `https://` base URL (default: the system's CAs); `proxy` an `http://` proxy URL. An
    unusable base or proxy URL is reported per request as `UpstreamConnectionError`, like any other
    unreachable upstream.
    """

    def __init__(self, base_url: str, *, max_connections: int = 64, timeouts: Timeouts | None = None,
                 headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None,
                 proxy: str | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.max_connections = max(1, max_connections)
        self.opened = 0                                     # connections opened so far (for tests/metrics)
        self._invalid: str | None = None
        self._host = ""
        self._port = 0
        self._ssl: ssl.SSLContext | None = None
        self._prefix = ""
        try:
            url = urlsplit(base_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError("expected http:// or https:// and a host")
            self._host = url.hostname
            default_port = 443 if url.scheme == "https" else 80
            self._port = url.port or default_port
        except ValueError as exc:
            self._invalid = f"unusable base URL {base_url!r}: {exc}"
            url = urlsplit("")
            default_port = 0
        if url.scheme == "https":
            self._ssl = tls or ssl.create_default_context()
        self._prefix = url.path.rstrip("/")
        bare = f"[{self._host}]" if ":" in self._host else self._host
        host = bare if self._port == default_port else f"{bare}:{self._port}"
        lines = [f"Host: {host}\r\n"] + [f"{k}: {v}\r\n" for k, v in (headers or {}).items()]
        # Where sockets go: the upstream itself, or the proxy (then a CONNECT head for https).
        self._dial_host, self._dial_port = self._host, self._port
        self._via = ""                                      # " through the proxy host:port", for errors
        self._connect_head: bytes | None = None
        if proxy and self._invalid is None:
            try:
                via = urlsplit(proxy)
                if via.scheme != "http" or not via.hostname:
                    raise ValueError("expected http://host:port")
                self._dial_host, self._dial_port = via.hostname, via.port or 80
                self._via = f" through the proxy {via.hostname}:{self._dial_port}"
            except ValueError as exc:
                self._invalid = f"unusable proxy URL: {exc}"    # the URL itself may hold credentials
            else:
                credentials = _proxy_authorization(via)
                if self._ssl is not None:
                    authority = f"{bare}:{self._port}"
                    self._connect_head = (f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
                                          f"{credentials}\r\n").encode("latin-1")
                else:   # plain HTTP through a proxy: absolute-form request targets
                    self._prefix = f"http://{host}{self._prefix}"
                    if credentials:
                        lines.append(credentials)
        self._fixed_headers = "".join(lines).encode("latin-1")
        self._open = 0                                      # connections open or being opened
        self._idle: collections.deque[_Connection] = collections.deque()
        self._conns: set[_Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open or being opened right now (never above `max_connections`)."""
        return self._open

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Response:
        """Send one request and return once the status line and headers have arrived.

        `path` is appended to the base URL's path. Raises `TimeoutError` or `UpstreamConnectionError`.
        """
        if self._invalid is not None:
            raise UpstreamConnectionError(self._invalid)
        if method == "HEAD":
            raise ValueError("HEAD requests are not supported")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.total
        head = self._head(method, path, body, headers)
        message = head + body if len(body) < 65536 else None   # one write for small requests
        fresh = False
        while True:
            conn = await self._acquire(loop, deadline, fresh)
            reused = conn.served > 0
            resp = Response(conn, loop, self.timeouts.read, deadline)
            try:
                if not conn.usable():
                    raise UpstreamConnectionError("upstream closed the connection without answering")
                conn.served += 1
                conn.response = resp
                transport = conn.transport
                assert transport is not None
                if message is not None:
                    transport.write(message)
                else:
                    transport.writelines((head, body))
                while not resp.status:
                    await resp._wait()
                return resp
            except UpstreamConnectionError:
                resp.close()
                if reused and not fresh and not resp._received:
                    fresh = True     # most likely a keep-alive connection the server had just closed
                    continue
                raise
            except BaseException:
                resp.close()
                raise

    async def close(self) -> None:
        """Close every connection, idle or busy; requests in flight fail with a connection error."""
        self._closed = True
        for conn in list(self._conns):
            conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    # -- internals ---------------------------------------------------------------------------------
    def _head(self, method: str, path: str, body: bytes, headers: dict[str, str] | None) -> bytes:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        if body or method not in ("GET", "DELETE", "OPTIONS"):
            extra += f"Content-Length: {len(body)}\r\n"
        return (f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed_headers
                + extra.encode("latin-1") + b"\r\n")

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float, fresh: bool) -> _Connection:
        """An idle connection (newest first), a new one if under the limit, or wait for either."""
        while True:
            if self._closed:
                raise UpstreamConnectionError("connection pool is closed")
            if not fresh:
                idle = self._idle
                while idle:
                    conn = idle.pop()
                    if conn.usable():
                        return conn
                    conn.close()
            if self._open < self.max_connections:
                return await self._connect(loop, deadline)
            if fresh and self._idle:
                self._idle.popleft().close()    # make room by retiring the oldest idle connection
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()             # we were handed a slot we will not use: pass it on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        self._open += 1
        conn = _Connection(self)
        try:
            async with asyncio.timeout_at(min(loop.time() + self.timeouts.connect, deadline)):
                if self._connect_head is not None:
                    await self._tunnel(loop, conn)
                else:
                    await loop.create_connection(
                        lambda: conn, self._dial_host, self._dial_port, ssl=self._ssl,
                        server_hostname=self._host if self._ssl is not None else None)
        except BaseException as exc:
            self._open -= 1
            self._wake_one()
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise UpstreamConnectionError(
                    f"cannot connect to {self._host}:{self._port}{self._via}: {exc}") from exc
            raise
        conn.counted = True
        self._conns.add(conn)
        self.opened += 1
        if conn.closed:       # lost between the handshake and now
            self._drop(conn)
        return conn

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, conn: _Connection) -> None:
        """Open a CONNECT tunnel through the proxy, then TLS to the upstream inside it."""
        assert self._connect_head is not None and self._ssl is not None
        tunnel = _Tunnel(loop)
        transport, _ = await loop.create_connection(lambda: tunnel, self._dial_host, self._dial_port)
        try:
            transport.write(self._connect_head)
            await tunnel.answered
            secure = await loop.start_tls(transport, conn, self._ssl, server_hostname=self._host)
        except BaseException:
            transport.close()
            raise
        if secure is None:     # only for a transport already closing
            raise UpstreamConnectionError("the tunnel closed during the TLS handshake")
        conn.connection_made(secure)

    def _release(self, conn: _Connection) -> None:
        """A connection finished an exchange cleanly: keep it for the next request."""
        if self._closed or not conn.usable():
            conn.close()
            return
        self._idle.append(conn)
        self._wake_one()

    def _drop(self, conn: _Connection) -> None:
        """Forget a closed connection and free its slot (safe to call more than once)."""
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._conns.discard(conn)
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
