"""RFC 9457 ``application/problem+json`` responses for every error a service returns.

Use cases raise ``plugboard_servicekit.errors.DomainError`` subclasses; they are
mapped here, in one place, to a problem with the class's status and title, the
error's detail, ``errors: [{field, message}]``, its headers (``Retry-After``,
``WWW-Authenticate``) and extensions. ``ProblemError`` stays for the HTTP layer
itself (a status that has no domain meaning).

Validation errors name the offending fields but never echo the submitted values:
request bodies carry secrets (passwords, tokens) and error bodies end up in
client logs.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plugboard_servicekit.errors import DomainError
from plugboard_servicekit.logging import get_logger

PROBLEM_CONTENT_TYPE = "application/problem+json"
_RESERVED = frozenset({"type", "title", "status", "detail", "instance"})
# Shorter inputs are found inside ordinary messages by chance ("a" in "valid").
_MIN_ECHO_CHECK = 4

log = get_logger("plugboard.http")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with this problem."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type_ = type_
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_response(
    status: int,
    title: str | None = None,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response; ``title`` defaults to the status phrase."""
    body: dict[str, Any] = {"type": type_, "title": title or _phrase(status), "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update((key, value) for key, value in extensions.items() if key not in _RESERVED)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        type_=exc.type_,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extensions,
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_problem(exc, request.url.path)


def domain_problem(exc: DomainError, instance: str | None = None) -> JSONResponse:
    """The problem response of a domain error (also usable outside a handler)."""
    extensions = dict(exc.extensions)
    if exc.errors:
        extensions["errors"] = [error.as_dict() for error in exc.errors]
    return problem_response(
        exc.status, exc.title, exc.detail, instance=instance, headers=exc.headers, **extensions
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(
        exc.status_code, phrase, detail, instance=request.url.path, headers=exc.headers
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """``{"field": "body.data.password", "message": ...}`` per error, without the input."""
    errors = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid value"))
        value = error.get("input")
        if isinstance(value, str) and len(value) >= _MIN_ECHO_CHECK and value in message:
            message = f"invalid value ({error.get('type', 'value_error')})"
        field = ".".join(str(part) for part in error.get("loc", ()))
        errors.append({"field": field, "message": message})
    return errors


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return problem_response(
            400, detail="The request body is not valid JSON.", instance=request.url.path
        )
    return problem_response(
        422,
        "Validation failed",
        "The request has invalid fields; see errors.",
        instance=request.url.path,
        errors=_field_errors(exc),
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Generic 500: the type is logged (message and locals may quote secrets), not shown."""
    log.error("unhandled_exception", exc_info=exc, path=request.url.path)
    return internal_error_response(request.url.path)


def internal_error_response(instance: str) -> JSONResponse:
    """The 500 problem every unexpected failure gets: nothing about the cause leaks."""
    return problem_response(
        500, detail="An unexpected error occurred; it has been logged.", instance=instance
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error ``app`` can produce a problem+json response."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
