"""Failure classes, the circuit breaker and PKCE values."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import httpx
import pytest
from oauth_broker.domain.breaker import CircuitBreaker, EndpointGuards
from oauth_broker.domain.failures import (
    FailureKind,
    TokenFailureError,
    classify_exception,
    classify_response,
)
from oauth_broker.domain.pkce import challenge, new_state, new_verifier


def _response(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "kind", "error"),
    [
        (_response(503), FailureKind.TRANSIENT, "http_503"),
        (_response(429, headers={"retry-after": "7"}), FailureKind.TRANSIENT, "http_429"),
        (_response(400, {"error": "invalid_grant"}), FailureKind.INVALID_GRANT, "invalid_grant"),
        (_response(401, {"error": "invalid_client"}), FailureKind.PERMANENT, "invalid_client"),
        (
            _response(400, {"error": "unauthorized_client"}),
            FailureKind.PERMANENT,
            "unauthorized_client",
        ),
        (_response(400, {"error": 'a secret" value\\'}), FailureKind.PERMANENT, "unknown_error"),
        (_response(302), FailureKind.PERMANENT, "unexpected_redirect"),
    ],
)
def test_classification(response: httpx.Response, kind: FailureKind, error: str) -> None:
    failure = classify_response(response)
    assert (failure.kind, failure.error) == (kind, error)


def test_retry_after_is_kept() -> None:
    assert classify_response(_response(429, headers={"retry-after": "7"})).retry_after == 7


def test_network_errors_are_transient() -> None:
    assert classify_exception(httpx.ConnectError("x")).kind is FailureKind.TRANSIENT
    assert classify_exception(httpx.ReadTimeout("x")).error == "timeout"
    # a token URL that does not parse is fixed by a new config, not by retrying
    assert classify_exception(httpx.InvalidURL("x")).kind is FailureKind.PERMANENT


def test_breaker_opens_and_half_opens() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.record(False)
    breaker.before()
    breaker.record(False)
    with pytest.raises(TokenFailureError) as refused:
        breaker.before()
    assert refused.value.error == "circuit_open"
    now[0] = 11
    breaker.before()  # the probe
    with pytest.raises(TokenFailureError):
        breaker.before()  # only one probe at a time
    breaker.record(True)
    breaker.before()


async def test_guard_caps_concurrency_and_ignores_grant_failures() -> None:
    guards = EndpointGuards(limit=3, threshold=1)
    active, peak = 0, 0

    async def call() -> None:
        nonlocal active, peak
        async with guards.calling("https://p"):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    await asyncio.gather(*(call() for _ in range(10)))
    assert peak == 3
    with pytest.raises(TokenFailureError):
        async with guards.calling("https://p"):
            raise TokenFailureError(FailureKind.INVALID_GRANT, "invalid_grant")
    async with guards.calling("https://p"):  # a dead grant does not open the breaker
        pass


def test_pkce_s256_and_state_entropy() -> None:
    verifier = new_verifier()
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge(verifier) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(base64.urlsafe_b64decode(new_state() + "=")) == 32
    assert 43 <= len(verifier) <= 128
    assert new_state() != new_state()
