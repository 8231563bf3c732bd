"""The httpx transport under every outbound client (service calls, providers): aiohttp.

httpx keeps its API (authlib's OAuth client is an ``httpx.AsyncClient``), but its
default transport, httpcore, scans every pooled connection for every request and
parses HTTP in Python: at 25 concurrent calls it cost 2.8 ms of CPU per request
where aiohttp, with its C parser, costs 0.45 ms (a refresh storm's provider calls).

httpx-aiohttp exists, but maps a dropped connection to ``ConnectTimeout``; callers
here read ``ConnectError``/``ConnectTimeout`` as "the request was never sent" and
repeat even a POST on it. ``_as_httpx_error`` keeps that distinction.

``PooledTransport.exchange`` is the lean path beside httpx, for the OAuth broker's
token calls: plain arguments in, an ``Answer`` read whole (and bounded) out.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

SERVICE_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=30)
"""16 connections keep a peer service busy (its own database pool is smaller); more
concurrent calls queue in the pool."""

_CHUNK = 64 * 1024
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_TRACER = trace.get_tracer("plugboard.http.client")
_HTTP_1_1 = {"http_version": b"HTTP/1.1"}
ANSWER_LIMIT = 1024 * 1024
"""The largest answer ``PooledTransport.exchange`` reads: a token answer is a few
hundred bytes, and a peer must not make the caller buffer without end."""


def port_of(url: httpx.URL) -> int:
    """The URL's port, or its scheme's default (443 for https, else 80)."""
    return url.port or (443 if url.scheme == "https" else 80)


@cache
def default_tls_context() -> ssl.SSLContext:
    """One verifying context per process: building one reads the CA bundle."""
    return ssl.create_default_context()


def _as_httpx_error(exc: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx error a caller can act on: ``Connect*`` only when nothing was sent."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout("connect timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(f"could not connect: {exc.os_error.strerror or 'refused'}")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout("read timed out")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("the peer closed the connection mid-answer")
    return httpx.ReadError(type(exc).__name__)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        raise _as_httpx_error(exc) from None


@contextmanager
def _client_span(method: str, url: httpx.URL) -> Iterator[Span]:
    """A client span (OpenTelemetry's httpx instrumentor patches only httpx's own
    transport). It names the URL without its query, which may carry a code or a token."""
    with _TRACER.start_as_current_span(method, kind=SpanKind.CLIENT) as span:
        if span.is_recording():
            span.set_attributes({
                "http.request.method": method, "server.address": url.host,
                "server.port": port_of(url),
                "url.full": str(url.copy_with(query=None, fragment=None)),
            })  # fmt: skip
        yield span


def _record_status(span: Span, status: int) -> None:
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))


@lru_cache(maxsize=1024)
def _aiohttp_url(url: httpx.URL) -> yarl.URL:
    """The URL as httpx encoded it, byte for byte, parsed once per endpoint: only
    ``exchange`` (token endpoints, a few per process) uses this cache."""
    return yarl.URL(str(url), encoded=True)


@lru_cache(maxsize=64)
def _aiohttp_timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(connect=seconds, sock_connect=seconds, sock_read=seconds)


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer read whole by ``PooledTransport.exchange``; ``headers`` is
    case-insensitive. Reads like the parts of an ``httpx.Response`` a caller uses."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.content)


def _too_large(limit: int) -> httpx.ReadError:
    return httpx.ReadError(f"the answer is larger than {limit} bytes")


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole (decoded) body, refused (``httpx.ReadError``) once it passes ``limit``
    bytes. Only a plain body of a known, small length is read at once: a compressed
    one is counted as it inflates."""
    length = response.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    if length is not None and "Content-Encoding" not in response.headers:
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


class _Body(httpx.AsyncByteStream):
    """The answer's body, read as httpx asks; closing returns the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


async def _httpx_response(response: aiohttp.ClientResponse) -> httpx.Response:
    """The answer for httpx. A small body with a length (service and token answers) is
    read here, at once: httpx's own chunked read of it cost more than the call's HTTP
    parsing. A larger or unsized body streams as httpx reads it."""
    length = response.content_length
    if length is None or length > _CHUNK:
        stream = _Body(response)
        return httpx.Response(response.status, headers=response.raw_headers, stream=stream,
                              extensions=_HTTP_1_1)  # fmt: skip
    try:
        with _httpx_errors():
            body = await response.read()
    finally:
        response.release()
    return httpx.Response(response.status, headers=response.raw_headers, content=body,
                          extensions=_HTTP_1_1)  # fmt: skip


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one aiohttp connection pool of ``limits``.

    ``resolver`` decides which addresses a name may connect to (the OAuth broker's
    egress guard); ``ssl_context`` verifies servers and may carry a client
    certificate. The session is opened on first use, inside the running loop."""

    def __init__(
        self,
        limits: httpx.Limits = SERVICE_LIMITS,
        *,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limits = limits
        self._resolver = resolver
        self._ssl = ssl_context or default_tls_context()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def _current_session(self) -> aiohttp.ClientSession:
        """The session of the running loop: one opened on another (now gone) loop is
        replaced, since aiohttp binds a session to the loop it was made in."""
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._loop = loop
            return self._open()
        return self._session

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 0,
            resolver=self._resolver,
            ssl=self._ssl,
        )
        # No cookie jar: one transport serves every client (and, for the broker, every
        # tenant); httpx keeps each client's own cookies.
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The call, in a client span whose context goes out as ``traceparent``."""
        with _client_span(request.method, request.url) as span:
            propagate.inject(request.headers)  # this attempt's span is the parent downstream
            response = await self._send(request)
            _record_status(span, response.status_code)
            return response

    async def exchange(
        self, method: str, url: httpx.URL, headers: Mapping[str, str], body: bytes,
        timeout: float, limit: int = ANSWER_LIMIT,
    ) -> Answer:  # fmt: skip
        """One request whose answer (up to ``limit`` bytes) is read whole, with no httpx
        request or response in between: those were a third of a token call's CPU in a
        refresh storm. Same span, same errors (httpx's) as ``handle_async_request``;
        ``timeout`` bounds the pool wait, the connect and every read."""
        session = self._current_session()
        # The body is sent whole: aiohttp frames it (Content-Length), never a caller's.
        sent = {k: v for k, v in headers.items() if k.lower() not in _FRAMING}
        with _client_span(method, url) as span:
            propagate.inject(sent)
            with _httpx_errors():
                async with session.request(
                    method, _aiohttp_url(url), headers=sent, data=body, allow_redirects=False,
                    timeout=_aiohttp_timeout(timeout), auto_decompress=True,
                ) as response:  # fmt: skip
                    answer = Answer(response.status, response.headers,
                                    await _read_capped(response, limit))  # fmt: skip
            _record_status(span, answer.status_code)
            return answer

    async def _send(self, request: httpx.Request) -> httpx.Response:
        session = self._current_session()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        # The body is sent whole: aiohttp frames it (Content-Length), never both framings.
        headers = [(k, v) for k, v in request.headers.multi_items() if k not in _FRAMING]
        with _httpx_errors():
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # as httpx encoded it, byte for byte
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"),  # waiting for a pooled connection, too
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return await _httpx_response(response)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
