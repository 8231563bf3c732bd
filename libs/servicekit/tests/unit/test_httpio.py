"""The outbound HTTP path (``plugboard_servicekit.httpio``): httpx on aiohttp.

A pooled request imports nothing (a failing import per call once cost a fifth of the
OAuth broker's CPU), a connection the server closed is not reused, and a failure
says whether the request may have reached the server: ``ServiceClient`` repeats a
POST only on ``ConnectError``/``ConnectTimeout``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import httpx
import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from plugboard_servicekit.httpio import PooledTransport
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


async def test_a_call_is_a_client_span_whose_context_goes_out_as_traceparent() -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("demo", otlp_endpoint=None).add_span_processor(SimpleSpanProcessor(exporter))
    sampled = SpanContext(0xAB << 120, 0xCD, is_remote=True, trace_flags=TraceFlags(1))
    received: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(_RESPONSE)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(sampled)))
    try:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            await client.get(f"http://127.0.0.1:{port}/token?code=secret-code")
    finally:
        context.detach(token)
        server.close()
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert span.parent is not None
    assert span.parent.span_id == 0xCD
    assert span.attributes is not None
    assert span.attributes["url.full"] == f"http://127.0.0.1:{port}/token"
    assert span.attributes["http.response.status_code"] == 200
    own = span.get_span_context()
    assert own is not None
    assert f"-{own.span_id:016x}-01".encode() in received[0]
