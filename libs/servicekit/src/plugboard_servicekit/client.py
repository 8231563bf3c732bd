"""Calls from one service to another, with this service's own identity.

```python
vault = ServiceClient.to(runtime, "credential-vault")   # PLUGBOARD_VAULT_URL
response = await vault.request("POST", "/v1/credentials", org=org, scopes=["credentials:write"],
                               json=body)
```

Each call carries a fresh-enough service token (``identity.ServiceIdentity``) for the
target, acting for ``org`` with only ``scopes``; never the end user's token. A call is
retried with exponential backoff and jitter when that cannot apply it twice: any call
whose connection failed before a byte was sent, and idempotent calls (GET, HEAD,
OPTIONS, PUT, DELETE unless told otherwise) on 429, 5xx or a read timeout. Problem
responses are raised as the ``DomainError`` of their status, so a use case handles a
remote 404 like a local one. Response bodies that are not problems are never put
into an exception: a body may hold a secret.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import structlog

from plugboard_servicekit import errors, metrics, telemetry
from plugboard_servicekit.httpio import PooledTransport
from plugboard_servicekit.identity import ServiceIdentity
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.settings import ServiceSettings

if TYPE_CHECKING:
    from plugboard_servicekit.app import Runtime

log = get_logger("plugboard.client")

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_MAX_RETRY_AFTER_SECONDS = 5.0
_MAX_PROBLEM_BYTES = 65536
_MAX_DETAIL_CHARS = 300
_BY_STATUS: dict[int, type[errors.DomainError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    412: errors.PreconditionFailed,
    422: errors.Invalid,
    428: errors.PreconditionRequired,
}
_SERVICE_URLS = {
    "connector-registry": "registry_url",
    "credential-vault": "vault_url",
    "oauth-broker": "oauth_url",
    "installation": "installation_url",
}


class UpstreamError(errors.DomainError):
    """Another service answered in a way this one cannot map (an unexpected status)."""

    status: ClassVar[int] = 502
    title: ClassVar[str] = "Bad Gateway"
    permanent: ClassVar[bool] = False


def service_url(settings: ServiceSettings, service: str) -> str:
    """The base URL of a platform service from ``PLUGBOARD_<X>_URL``."""
    try:
        return getattr(settings, _SERVICE_URLS[service])
    except KeyError:
        raise ValueError(f"unknown service {service!r}") from None


class ServiceClient:
    """An ``httpx.AsyncClient`` to one service, signing as ``identity``; close it."""

    def __init__(
        self,
        base_url: str,
        identity: ServiceIdentity,
        audience: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        identity.require_signing()
        self.audience = audience
        self._identity = identity
        self._retries = retries
        self._backoff = backoff
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport or PooledTransport(),
            follow_redirects=False,
        )

    @classmethod
    def to(cls, runtime: Runtime[Any], service: str, **options: Any) -> ServiceClient:
        """A client to ``service`` (``credential-vault``, ...) at its configured URL
        (``PLUGBOARD_<X>_URL``), signing as the service ``runtime`` belongs to."""
        return cls(service_url(runtime.settings, service), runtime.identity, service, **options)

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        org: str,
        scopes: Iterable[str],
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """The response (2xx/3xx), or the ``DomainError`` its problem maps to;
        ``Unavailable`` when the service could not be reached."""
        method = method.upper()
        may_repeat = method in _IDEMPOTENT if idempotent is None else idempotent
        token = self._identity.token(audience=self.audience, org=org, scopes=scopes)
        request = self._http.build_request(
            method, path, json=json, params=params, headers=self._headers(token, headers)
        )
        response = await self._send(request, may_repeat)
        if response.status_code >= 400:
            raise await self._error(response)
        return response

    def _headers(self, token: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {**(extra or {}), **telemetry.inject_traceparent()}
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
        if isinstance(correlation_id, str):
            headers.setdefault("X-Correlation-ID", correlation_id)
        headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _send(self, request: httpx.Request, may_repeat: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < self._retries and (may_repeat or never_sent):
                    attempt += 1
                    await self._pause(request, attempt, type(exc).__name__, None)
                    continue
                self._count(request, "unreachable")
                raise errors.Unavailable(
                    f"{self.audience} could not be reached.", retry_after=1
                ) from None
            retryable = response.status_code == 429 or response.status_code >= 500
            if not (retryable and may_repeat and attempt < self._retries):
                self._count(request, f"{response.status_code // 100}xx")
                return response
            await response.aclose()
            attempt += 1
            await self._pause(request, attempt, str(response.status_code), _retry_after(response))

    async def _pause(
        self, request: httpx.Request, attempt: int, reason: str, retry_after: float | None
    ) -> None:
        delay = retry_after if retry_after is not None else self._backoff * 2**attempt
        delay = min(_MAX_RETRY_AFTER_SECONDS, delay) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        log.warning(
            "service_call_retry",
            target=self.audience,
            method=request.method,
            attempt=attempt,
            reason=reason,
        )
        await asyncio.sleep(delay)

    def _count(self, request: httpx.Request, outcome: str) -> None:
        metrics.SERVICE_CALLS.labels(
            target=self.audience, method=request.method, outcome=outcome
        ).inc()

    async def _error(self, response: httpx.Response) -> errors.DomainError:
        problem = await _problem_of(response)
        retry_after = _retry_after(response)
        return upstream_error(
            self.audience,
            response.status_code,
            problem.get("detail"),
            retry_after=int(retry_after) if retry_after is not None else None,
            field_errors=_field_errors(problem.get("errors")),
        )


def upstream_error(
    upstream: str,
    status: int,
    remote_detail: object = None,
    *,
    retry_after: int | None = None,
    field_errors: Sequence[errors.FieldError] = (),
) -> errors.DomainError:
    """The error a call to ``upstream`` that answered ``status`` raises: 429/5xx as
    ``Unavailable``, known 4xx as their own kind, others ``UpstreamError`` (502). Also
    for one item of a batch answer, so it fails as the single call would."""
    detail = f"{upstream} answered {status}"
    if isinstance(remote_detail, str) and remote_detail:
        detail = f"{detail}: {remote_detail[:_MAX_DETAIL_CHARS]}"
    if status == 429 or status >= 500:
        return errors.Unavailable(detail, retry_after=retry_after, upstream=upstream)
    kind = _BY_STATUS.get(status, UpstreamError)
    return kind(detail, errors=list(field_errors), upstream=upstream)


async def _problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document, or {} when the body is not one (never kept: may be secret)."""
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/problem+json"):
        await response.aclose()
        return {}
    body = await response.aread()
    if len(body) > _MAX_PROBLEM_BYTES:
        return {}
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _field_errors(raw: Any) -> list[errors.FieldError]:
    if not isinstance(raw, list):
        return []
    return [
        errors.FieldError(item["field"], item["message"])
        for item in raw
        if isinstance(item, dict)
        and isinstance(item.get("field"), str)
        and isinstance(item.get("message"), str)
    ]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None
