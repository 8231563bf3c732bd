"""The pooled httpx transport under every outbound client (service calls, providers).

httpcore's pool asks every idle connection ``is_readable`` each time it schedules a
request (its keep-alive check); through anyio each ask builds a dict of the socket's
typed attributes. In a refresh storm that was a fifth of the OAuth broker's CPU. The
stream wrapper below keeps the socket and answers from it.

The pool is small and kept alive whole (``SERVICE_LIMITS``): httpcore scans every
connection for each connection on every request, and closes idle connections beyond
``max_keepalive_connections`` on every call.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.anyio import (
    AnyIOBackend,
)  # the real class (httpcore.AnyIOBackend is a stub's type)

SERVICE_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=30)
"""16 connections keep a peer service busy (its own database pool is smaller); more
concurrent calls queue in the pool."""


def socket_readable(sock: socket.socket | None) -> bool:
    """httpcore's rule: readable, or gone (a closed peer reads as end of stream)."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class KeptSocketStream(httpcore.AsyncNetworkStream):
    """Delegates to httpcore's stream; ``is_readable`` is answered from the socket."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return KeptSocketStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class KeptSocketBackend(httpcore.AsyncNetworkBackend):
    """Wraps another backend's TCP streams (``inner``: anyio, or a vetting backend)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return KeptSocketStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return KeptSocketStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PooledTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` on a pool of ``limits`` over ``KeptSocketBackend``."""

    def __init__(
        self,
        limits: httpx.Limits = SERVICE_LIMITS,
        *,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=KeptSocketBackend(network_backend),
        )
