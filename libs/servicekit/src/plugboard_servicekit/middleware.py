"""Pure-ASGI middleware: request context + access log + latency, and a body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request cost to a few
function calls and never buffers bodies. Add ``BodySizeLimitMiddleware`` first and
``RequestContextMiddleware`` last, so the latter is outermost and also logs 413s.
"""

import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.metrics import HTTP_REQUEST_SECONDS
from plugboard_servicekit.problems import internal_error_response, problem_response
from plugboard_servicekit.telemetry import current_trace_ids

# Client-supplied ids end up in logs: accept only short, plain tokens.
_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes and scrapes every few seconds would drown the access log; failures still log.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = get_logger("plugboard.access")
log = get_logger("plugboard.http")


def _client_id(headers: Headers, name: str) -> str | None:
    value = headers.get(name)
    return value if value is not None and _ID_PATTERN.fullmatch(value) else None


def _bind_request_context(scope: Scope) -> str:
    """Fresh structlog context for this request; returns the request id."""
    headers = Headers(scope=scope)
    request_id = _client_id(headers, "x-request-id") or uuid.uuid4().hex
    correlation_id = _client_id(headers, "x-correlation-id") or request_id
    structlog.contextvars.clear_contextvars()
    trace_id, span_id = current_trace_ids()
    ids = {"trace_id": trace_id, "span_id": span_id}
    structlog.contextvars.bind_contextvars(
        request_id=request_id,
        correlation_id=correlation_id,
        **{key: value for key, value in ids.items() if value is not None},
    )
    return request_id


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/orgs/{org_id}``): bounded metric labels."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Request/correlation ids, X-Request-ID echo, latency histogram, one access line.

    Also the last line of defence: an exception nothing handled becomes the
    generic 500 problem here, so the server never logs its message.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _bind_request_context(scope)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
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
        HTTP_REQUEST_SECONDS.labels(
            service=self.service, method=method, route=_route_template(scope), status=str(status)
        ).observe(seconds)
        if scope["path"] in _QUIET_PATHS and status < 400:
            return
        access_log.info(
            "request",
            method=method,
            path=scope["path"],
            status=status,
            duration_ms=round(seconds * 1000, 2),
        )


def _too_large_detail(max_bytes: int) -> str:
    return f"The request body exceeds {max_bytes} bytes."


class _BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader re-raises it to the problem handlers."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_detail(max_bytes))


class BodySizeLimitMiddleware:
    """413 problem when Content-Length or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
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
