"""Per-route body limits: 25 MiB streamed for the two document imports, the small
limit everywhere else.

servicekit's ``BodySizeLimitMiddleware`` applies one limit to every route, so the
registry sets it to the import size (``REGISTRY_MAX_BODY_BYTES``) and enforces the
small one here, in the route class of every other router: the body is read with
the bound before FastAPI parses it. The imports stream into a spooled temporary
file (memory up to 1 MiB, disk beyond) with their own bound.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Coroutine
from typing import IO, Any, ClassVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from plugboard_servicekit.errors import DomainError
from plugboard_servicekit.http import deps_of
from plugboard_servicekit.problems import problem_response

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SPOOL_IN_MEMORY = 1024 * 1024


class ContentTooLargeError(DomainError):
    status: ClassVar[int] = 413
    title: ClassVar[str] = "Content Too Large"


def _too_large(request: Request, limit: int) -> Response:
    detail = f"The request body exceeds {limit} bytes."
    return problem_response(413, detail=detail, instance=request.url.path)


def _declared(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


class SmallBodyRoute(APIRoute):
    """Reads at most ``small_body_bytes`` of a request body, then lets FastAPI parse it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method not in _WITH_BODY:
                return await handler(request)
            limit = deps_of(request).settings.small_body_bytes
            declared = _declared(request)
            if declared is not None and declared > limit:
                return _too_large(request, limit)
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return _too_large(request, limit)
            request._body = bytes(body)  # Starlette's cached body: what body()/json() read
            return await handler(request)

        return limited


async def spool(request: Request, limit: int) -> IO[bytes]:
    """The body in a spooled temporary file (rewound), or ``ContentTooLargeError``."""
    declared = _declared(request)
    if declared is not None and declared > limit:
        raise ContentTooLargeError(f"The document exceeds {limit} bytes.")
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ContentTooLargeError(f"The document exceeds {limit} bytes.")
            spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled  # type: ignore[return-value]
