"""Pure-ASGI middleware: request context + access log + latency, and a body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request cost to a few
function calls and never buffers bodies. Add ``BodySizeLimitMiddleware`` first and
``RequestContextMiddleware`` last, so the latter is outermost and also logs 413s.
"""

import re
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugboard_servicekit.logging import get_logger, log_access, redact_text
from plugboard_servicekit.metrics import HTTP_REQUEST_SECONDS
from plugboard_servicekit.problems import internal_error_response, problem_response
from plugboard_servicekit.telemetry import current_trace_ids, request_span

# Client-supplied ids end up in logs: accept only short, plain tokens.
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes and scrapes every few seconds would drown the access log; failures still log.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The request headers this middleware reads, found in one pass over the raw list.
_WANTED = frozenset({b"x-request-id", b"x-correlation-id", b"traceparent", b"tracestate"})

log = get_logger("plugboard.http")


def _wanted_headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header in ``_WANTED`` (names are lower case in ASGI)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _WANTED and name not in found:
            found[name] = value
    return found


def _client_id(headers: dict[bytes, bytes], name: bytes) -> str | None:
    """A client's id when it is a short plain token the log redactor would leave as is
    (the access line logs ids without redacting them)."""
    raw = headers.get(name)
    if raw is None:
        return None
    value = raw.decode("latin-1")
    if _ID_PATTERN.fullmatch(value) and redact_text(value) == value:
        return value
    return None


def _bind_request_context(headers: dict[bytes, bytes]) -> str:
    """Fresh structlog context for this request; returns the request id."""
    request_id = _client_id(headers, b"x-request-id") or uuid.uuid4().hex
    correlation_id = _client_id(headers, b"x-correlation-id") or request_id
    structlog.contextvars.clear_contextvars()
    trace_id, span_id = current_trace_ids()
    if trace_id is None:
        structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=correlation_id)
    else:
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            correlation_id=correlation_id,
            trace_id=trace_id,
            span_id=span_id,
        )
    return request_id


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/orgs/{org_id}``): bounded metric labels."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Request/correlation ids, X-Request-ID echo, trace context, latency histogram, one
    access line.

    Without tracing instrumentation it also gives the request its trace context (the
    caller's ``traceparent`` continued, or a new trace) with a span that records nothing,
    so logs, the outbox and outgoing calls carry trace ids at no recording cost.
    Also the last line of defence: an exception nothing handled becomes the
    generic 500 problem here, so the server never logs its message.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Histogram children by (method, route, status): ``labels()`` per request costs
        # more than the observation itself.
        self._series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _wanted_headers(scope)
        with request_span(headers.get(b"traceparent"), headers.get(b"tracestate")):
            await self._handle(scope, receive, send, _bind_request_context(headers))

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        status = 500
        started = False
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0] != b"x-request-id"]
                message["headers"] = [*headers, request_id_header]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            log.error("unhandled_exception", exc_info=exc, path=scope["path"])
            await internal_error_response(scope["path"])(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        key = (method, _route_template(scope), status)
        series = self._series.get(key)
        if series is None:
            series = HTTP_REQUEST_SECONDS.labels(
                service=self.service, method=method, route=key[1], status=str(status)
            )
            self._series[key] = series
        series.observe(seconds)
        if scope["path"] in _QUIET_PATHS and status < 400:
            return
        log_access(method, scope["path"], status, round(seconds * 1000, 2))


def _too_large_detail(max_bytes: int) -> str:
    return f"The request body exceeds {max_bytes} bytes."


class _BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader re-raises it to the problem handlers."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_detail(max_bytes))


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, whether the HTTP/1 framing bounds the body by it): an HTTP/1
    request without Transfer-Encoding has exactly Content-Length bytes, or none."""
    declared: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else None
            if declared is None:
                return None, False
        elif name == b"transfer-encoding":
            chunked = True
    http1 = scope.get("http_version") in ("1.0", "1.1")
    return declared, http1 and not chunked


class BodySizeLimitMiddleware:
    """413 problem when Content-Length or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, framed = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        if framed:  # the server reads exactly Content-Length bytes (or none): nothing to count
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body of unknown length (chunked, HTTP/2): count it as it streams in."""
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = _too_large_detail(self.max_bytes)
        response = problem_response(413, detail=detail, instance=scope["path"])
        await response(scope, receive, send)
