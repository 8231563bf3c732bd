"""A TCP proxy on loopback that loses one answer: the network failing between the
broker and the vault after the vault has acted (a timeout, a reset), never a fake vault.

The first request whose head contains ``lose`` is forwarded and answered by the real
upstream, and then the client's connection is closed without that answer. Everything
else passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class LosingProxy:
    upstream_port: int
    lose: bytes
    port: int = 0
    lost: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        losing = asyncio.Event()  # set: this connection's answers go nowhere
        try:
            await asyncio.gather(
                self._requests(reader, up_writer, losing), self._answers(up_reader, writer, losing)
            )
        finally:
            for stream in (writer, up_writer):
                stream.close()

    async def _requests(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, losing: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                if self.lost == 0 and self.lose in chunk:
                    self.lost = 1
                    losing.set()
                sink.write(chunk)
                await sink.drain()

    async def _answers(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, losing: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                if losing.is_set():  # the upstream acted and answered; the client never hears
                    sink.transport.abort()
                    return
                sink.write(chunk)
                await sink.drain()


@asynccontextmanager
async def losing_proxy(upstream_url: str, lose: bytes) -> AsyncIterator[LosingProxy]:
    proxy = LosingProxy(int(upstream_url.rsplit(":", 1)[1].split("/")[0]), lose)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    async with server:
        yield proxy
