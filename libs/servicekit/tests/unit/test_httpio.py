"""The outbound HTTP path (``plugboard_servicekit.httpio``): httpx on aiohttp.

A pooled request imports nothing (a failing import per call once cost a fifth of the
OAuth broker's CPU), a connection the server closed is not reused, and a failure
says whether the request may have reached the server: ``ServiceClient`` repeats a
POST only on ``ConnectError``/``ConnectTimeout``."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.abc
import importlib.machinery
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import ModuleType

import httpx
import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from plugboard_servicekit.httpio import Answer, PooledTransport
from plugboard_servicekit.telemetry import configure_tracing

_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Records every module the import system has to search for (not in sys.modules)."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.searched.append(fullname)
        return None


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(_RESPONSE)
            await writer.drain()
    writer.close()


async def test_a_pooled_request_searches_for_no_module() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    recorder = _ImportRecorder()
    try:
        transport = PooledTransport()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", transport=transport
        ) as client:
            assert (await client.get("/")).text == "ok"  # first use may import lazily
            sys.meta_path.insert(0, recorder)
            for _ in range(3):
                assert (await client.get("/")).text == "ok"
    finally:
        sys.meta_path.remove(recorder)
        server.close()
    assert recorder.searched == []


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    """A peer that closed its end after answering: the next request opens a new
    connection instead of failing on the dead one."""
    connections = 0

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(_RESPONSE)
        await writer.drain()
        writer.close()  # keep-alive refused after one answer

    server = await asyncio.start_server(once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            for _ in range(3):
                assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
                await asyncio.sleep(0.05)  # the close reaches our socket
    finally:
        server.close()
    assert connections == 3


async def test_a_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with httpx.AsyncClient(transport=PooledTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/", content=b"x")


async def test_a_request_dropped_after_sending_is_not_a_connect_error() -> None:
    """The server read the request and closed without answering: it may have acted
    on it, so the error must not read as "never sent"."""
    received: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            with pytest.raises(httpx.TransportError) as caught:
                await client.post(f"http://127.0.0.1:{port}/", content=b"x")
    finally:
        server.close()
    assert received
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport(), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/")
    finally:
        server.close()


async def _get_through_httpx(url: str) -> None:
    async with httpx.AsyncClient(transport=PooledTransport()) as client:
        await client.get(url)


async def _exchange(url: str) -> None:
    transport = PooledTransport()
    try:
        await transport.exchange("POST", httpx.URL(url), {}, b"grant_type=x", 2.0)
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    ("call", "method", "body"),
    [(_get_through_httpx, "GET", b""), (_exchange, "POST", b"grant_type=x")],
    ids=["request", "exchange"],
)
async def test_a_call_is_a_client_span_whose_context_goes_out_as_traceparent(
    call: Callable[[str], Awaitable[None]], method: str, body: bytes
) -> None:
    """Both ways out (httpx requests and the token calls' ``exchange``) trace alike."""
    exporter = InMemorySpanExporter()
    configure_tracing("demo", otlp_endpoint=None).add_span_processor(SimpleSpanProcessor(exporter))
    sampled = SpanContext(0xAB << 120, 0xCD, is_remote=True, trace_flags=TraceFlags(1))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(sampled)))
    try:
        async with _recording() as (recorder, url):
            await call(f"{url}/token?code=secret-code")
    finally:
        context.detach(token)
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert span.parent is not None
    assert span.parent.span_id == 0xCD
    assert span.attributes is not None
    assert span.attributes["url.full"] == f"{url}/token"
    assert span.attributes["http.request.method"] == method
    assert span.attributes["http.response.status_code"] == 200
    own = span.get_span_context()
    assert own is not None
    ((head, sent),) = recorder.requests
    assert f"-{own.span_id:016x}-01".encode() in head
    assert sent == body


class _Recorder:
    """Answers 200 and keeps each request's head and body; the first answer sets a cookie."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                body = await self._body(reader, head)
                self.requests.append((head, body))
                cookie = b"Set-Cookie: sess=tenant-a\r\n" if len(self.requests) == 1 else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + cookie + b"\r\nok")
                await writer.drain()
        writer.close()

    @staticmethod
    async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                return await reader.readexactly(int(line.split(b":")[1]))
        return b""


@contextlib.asynccontextmanager
async def _recording() -> AsyncIterator[tuple[_Recorder, str]]:
    recorder = _Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    try:
        yield recorder, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_cookies_never_cross_from_one_client_to_another() -> None:
    """One transport serves every client (the broker's: every tenant)."""
    transport = PooledTransport()
    async with _recording() as (recorder, url):
        for tenant in ("a", "b"):  # a client per call, as the broker's authlib clients
            await httpx.AsyncClient(transport=transport).get(f"{url}/token?tenant={tenant}")
        await transport.aclose()
    assert b"sess=" not in recorder.requests[1][0].lower()


async def test_a_streamed_body_goes_with_one_framing_and_the_url_as_encoded() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"grant_type=refresh_token"
        yield b"&refresh_token=r"

    async with _recording() as (recorder, url), httpx.AsyncClient(transport=PooledTransport()) as c:
        await c.post(f"{url}/token?sig=ab%2Fcd%7E", content=chunks())
    head, body = recorder.requests[0]
    assert head.startswith(b"POST /token?sig=ab%2Fcd%7E HTTP/1.1")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"grant_type=refresh_token&refresh_token=r"


async def test_a_closed_transport_refuses_as_never_sent() -> None:
    transport = PooledTransport()
    await transport.aclose()
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")


def test_one_transport_serves_successive_event_loops() -> None:
    """A session is bound to its loop; the transport opens a new one for a new loop."""
    transport = PooledTransport()

    async def call() -> int:
        async with _recording() as (_, url):
            return (await httpx.AsyncClient(transport=transport).get(url)).status_code

    assert [asyncio.run(call()), asyncio.run(call())] == [200, 200]


def _answering(head: bytes, body: bytes) -> Callable[..., Awaitable[None]]:
    """A server that answers every request with ``head`` + ``body`` and then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + body)
        await writer.drain()
        writer.close()

    return answer


@pytest.mark.parametrize(
    ("length", "sent"),
    [(100, 10), (200_000, 70_000)],
    ids=["small body read in the transport", "large body streamed"],
)
async def test_a_body_cut_off_mid_answer_is_a_protocol_error(length: int, sent: int) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()
    server = await asyncio.start_server(_answering(head, b"x" * sent), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{port}/")
    finally:
        server.close()


@pytest.mark.parametrize("size", [10, 200_000], ids=["small", "large"])
async def test_a_gzip_body_of_any_size_arrives_decoded(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    packed = gzip.compress(payload)
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}\r\n\r\n"
    ).encode()
    server = await asyncio.start_server(_answering(head, packed), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            response = await client.get(f"http://127.0.0.1:{port}/")
    finally:
        server.close()
    assert response.content == payload


async def test_an_exchange_reads_the_answer_whole_with_its_headers() -> None:
    """``exchange`` (the token calls): the request goes as given, with one framing; the
    answer's headers read case-insensitively and its JSON parses."""
    body = b'{"access_token": "a"}'
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nRetry-After: 3\r\n\r\n"
    async with _recording() as (recorder, url):
        transport = PooledTransport()
        answer = await transport.exchange(
            "POST", httpx.URL(f"{url}/token?sig=ab%2Fcd"),
            {"Accept": "application/json", "Content-Length": "999"},
            b"grant_type=refresh_token", 2.0,
        )  # fmt: skip
        await transport.aclose()
    request_head, request_body = recorder.requests[0]
    assert request_head.startswith(b"POST /token?sig=ab%2Fcd HTTP/1.1")
    assert request_body == b"grant_type=refresh_token"
    assert request_head.lower().count(b"content-length") == 1
    assert b"content-length: 24" in request_head.lower()
    assert (answer.status_code, answer.is_success, answer.content) == (200, True, b"ok")
    answer = await _exchange_with(head.encode(), body)
    assert answer.headers["retry-after"] == "3"
    assert answer.json() == {"access_token": "a"}


async def _exchange_with(head: bytes, body: bytes, limit: int = 1024) -> Answer:
    server = await asyncio.start_server(_answering(head, body), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = PooledTransport()
    try:
        return await transport.exchange(
            "POST", httpx.URL(f"http://127.0.0.1:{port}/token"), {}, b"x", 2.0, limit
        )
    finally:
        await transport.aclose()
        server.close()


_BOMB = gzip.compress(b"x" * 100_000)  # 100 kB from about 130 bytes


async def test_an_exchange_answer_arrives_decoded() -> None:
    packed = gzip.compress(b'{"access_token": "a"}')
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(packed)}\r\n\r\n"
    assert (await _exchange_with(head.encode(), packed)).json() == {"access_token": "a"}


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", b"x" * 2000),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"x" * 2000),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(_BOMB),
            _BOMB,
        ),
    ],
    ids=["sized", "unsized", "small but inflating"],
)
async def test_an_exchange_answer_over_the_limit_is_refused(head: bytes, body: bytes) -> None:
    """A peer cannot make the caller buffer without end, not even with a gzip bomb."""
    with pytest.raises(httpx.ReadError):
        await _exchange_with(head, body, limit=1024)


async def test_an_exchange_maps_failures_as_requests_do() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    transport = PooledTransport()
    with pytest.raises(httpx.ConnectError):
        await transport.exchange("POST", httpx.URL(f"http://127.0.0.1:{port}/"), {}, b"x", 2.0)
    await transport.aclose()


async def test_an_exchange_dropped_after_sending_is_not_a_connect_error() -> None:
    """As for requests: the server read the token request, so it must not read as
    never sent (a POST that may have rotated a refresh token is not repeated)."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = PooledTransport()
    try:
        with pytest.raises(httpx.TransportError) as caught:
            await transport.exchange("POST", httpx.URL(f"http://127.0.0.1:{port}/"), {}, b"x", 2.0)
    finally:
        await transport.aclose()
        server.close()
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
