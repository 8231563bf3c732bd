"""The outbound HTTP path (``plugboard_servicekit.httpio``).

Every service-to-service and provider call goes through httpx/httpcore, which runs
``import sniffio`` for each lock it sets up. Without the package installed, each of
those imports fails after searching all of ``sys.path``: about a fifth of the OAuth
broker's CPU in a refresh storm. A pooled request must import nothing."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import importlib.machinery
import socket
import sys
from collections.abc import Sequence
from types import ModuleType

import httpx
from plugboard_servicekit.httpio import PooledTransport, socket_readable

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
    """The pool's keep-alive check asks the kept socket: a peer that closed its end
    reads as readable, so the next request opens a new connection instead of failing."""
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


def test_socket_readable_follows_the_socket() -> None:
    left, right = socket.socketpair()
    try:
        assert socket_readable(left) is False
        right.send(b"x")
        assert socket_readable(left) is True
    finally:
        left.close()
        right.close()
    assert socket_readable(left) is True  # closed: treated as readable (end of stream)
    assert socket_readable(None) is True
