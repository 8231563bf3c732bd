"""Domain errors: what a use case raises when it refuses, in the domain's words.

Use cases never raise HTTP errors. The HTTP layer maps a ``DomainError`` to an
RFC 9457 problem in one place (``problems.install_problem_handlers``); the event
consumer maps the ``permanent`` ones (retrying cannot fix them) to a recorded
skip instead of five retries and a dead letter. Texts are fixed or name fields:
never a submitted value, which may be a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field: a dotted path (``body.data.password``) and a fixed message."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DomainError(Exception):
    """Base of every refusal; subclasses fix the HTTP status and title."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad Request"
    permanent: ClassVar[bool] = True
    """True when retrying the same input can never succeed (consumers skip it)."""

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.extensions = extensions


class Invalid(DomainError):
    """The input breaks a rule; ``errors`` names each field."""

    status = 422
    title = "Validation failed"


class BadRequest(DomainError):
    """The request cannot be understood (a malformed token, cursor or document)."""

    status = 400
    title = "Bad Request"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    """No such thing for this caller: another tenant's ids answer this too."""

    status = 404
    title = "Not Found"


class Conflict(DomainError):
    """The request contradicts the current state (a duplicate name, a thing in use)."""

    status = 409
    title = "Conflict"


class PreconditionFailed(DomainError):
    """``If-Match`` names a version that is no longer current."""

    status = 412
    title = "Precondition Failed"


class PreconditionRequired(DomainError):
    """The change needs ``If-Match`` and none was sent."""

    status = 428
    title = "Precondition Required"


class Unavailable(DomainError):
    """Not now: a dependency is down or backing off. ``retry_after`` seconds, if known.

    Not permanent: a consumer retries it like any transient error."""

    status = 503
    title = "Service Unavailable"
    permanent = False

    def __init__(self, detail: str, *, retry_after: int | None = None, **extensions: Any) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(detail, headers=headers, **extensions)
        self.retry_after = retry_after
