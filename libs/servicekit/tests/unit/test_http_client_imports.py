"""Every service-to-service and provider call goes through httpx/httpcore, which runs
``import sniffio`` for each lock it sets up. Without the package installed, each of
those imports fails after searching all of ``sys.path``: about a fifth of the OAuth
broker's CPU in a refresh storm. A pooled request must import nothing."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import httpx

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
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/")).text == "ok"  # first use may import lazily
            sys.meta_path.insert(0, recorder)
            for _ in range(3):
                assert (await client.get("/")).text == "ok"
    finally:
        sys.meta_path.remove(recorder)
        server.close()
    assert recorder.searched == []
