"""What a failed token request means, and so what the broker does next.

- transient (network, 5xx, 429 with Retry-After, open breaker): retry later
  with backoff; callers keep getting the current token while it is valid;
- ``invalid_grant``: the refresh token is dead, unless another replica just
  rotated it, so the caller re-reads the credential before giving up;
- everything else the provider refuses (``invalid_client``,
  ``unauthorized_client``, ``invalid_scope``, a refused URL): permanent until
  the credential or config changes.

Only the OAuth error code leaves here; ``error_description`` may echo input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx

from oauth_broker.domain.egress import EgressRefusedError

_ERROR_CODE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$")  # RFC 6749 error charset


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    INVALID_GRANT = "invalid_grant"
    PERMANENT = "permanent"


class TokenFailureError(Exception):
    """A token request that did not produce tokens; ``error`` is a safe code."""

    def __init__(
        self,
        kind: FailureKind,
        error: str,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{kind}: {error}")
        self.kind, self.error, self.retry_after, self.status = kind, error, retry_after, status

    @property
    def retryable(self) -> bool:
        return self.kind is FailureKind.TRANSIENT


_PERMANENT_CODES = {
    "invalid_client",
    "unauthorized_client",
    "invalid_request",
    "invalid_scope",
    "unsupported_grant_type",
    "access_denied",
}


def safe_code(value: object, fallback: str) -> str:
    """An OAuth error code fit for events and logs (anything odd becomes ``fallback``)."""
    return value if isinstance(value, str) and _ERROR_CODE.match(value) else fallback


def retry_after_seconds(header: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        from datetime import UTC, datetime

        return max((parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


class TokenAnswer(Protocol):
    """What classifying reads of an answer: the transport's ``Answer`` or an
    ``httpx.Response``."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def json(self) -> Any: ...


def classify_response(response: TokenAnswer) -> TokenFailureError:
    """A non-2xx (or unreadable 2xx) token endpoint answer."""
    status = response.status_code
    if status == 429 or status >= 500:
        after = retry_after_seconds(response.headers.get("retry-after"))
        return TokenFailureError(FailureKind.TRANSIENT, f"http_{status}", after, status)
    if 300 <= status < 400:
        return TokenFailureError(FailureKind.PERMANENT, "unexpected_redirect", status=status)
    code = _error_code(response)
    if code == "invalid_grant":
        return TokenFailureError(FailureKind.INVALID_GRANT, code, status=status)
    if code in _PERMANENT_CODES or 400 <= status < 500:
        return TokenFailureError(FailureKind.PERMANENT, code or f"http_{status}", status=status)
    return TokenFailureError(FailureKind.TRANSIENT, code or "invalid_token_response", status=status)


def _error_code(response: TokenAnswer) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return safe_code(body.get("error"), "unknown_error") if isinstance(body, dict) else None


def classify_exception(exc: BaseException) -> TokenFailureError:
    """Exceptions raised while calling the provider."""
    if isinstance(exc, TokenFailureError):
        return exc
    if isinstance(exc, EgressRefusedError | httpx.InvalidURL):  # fixed only by a new config
        return TokenFailureError(FailureKind.PERMANENT, "egress_refused")
    if isinstance(exc, httpx.TimeoutException):
        return TokenFailureError(FailureKind.TRANSIENT, "timeout")
    if isinstance(exc, httpx.TransportError):
        return TokenFailureError(FailureKind.TRANSIENT, "network_error")
    return TokenFailureError(FailureKind.TRANSIENT, "unexpected_error")
