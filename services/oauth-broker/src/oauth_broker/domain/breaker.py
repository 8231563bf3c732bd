"""Protect providers: a concurrency cap and a circuit breaker per token endpoint.

A refresh storm (10,000 tokens due in one minute, or a customer hammering a
failing credential) must not become a denial of service against the provider,
and a provider that is down should not be asked again and again. Per process:
each replica caps itself, so the fleet's cap is replicas x cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from oauth_broker.domain.failures import FailureKind, TokenFailureError


@dataclass
class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive transient failures; after
    ``cooldown`` seconds one probe is let through (half-open); a success closes it."""

    threshold: int = 5
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    def before(self) -> None:
        if self.opened_at is None:
            return
        remaining = self.cooldown - (self.clock() - self.opened_at)
        if remaining > 0 or self.probing:
            raise TokenFailureError(FailureKind.TRANSIENT, "circuit_open", max(remaining, 1.0))
        self.probing = True

    def record(self, ok: bool) -> None:
        self.probing = False
        if ok:
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


@dataclass
class EndpointGuard:
    """One token endpoint's semaphore and breaker."""

    limit: int
    breaker: CircuitBreaker
    semaphore: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.limit)


class EndpointGuards:
    """Lazily made guards keyed by token endpoint origin (scheme://host:port)."""

    def __init__(self, limit: int = 10, threshold: int = 5, cooldown: float = 30.0) -> None:
        self._limit, self._threshold, self._cooldown = limit, threshold, cooldown
        self._guards: dict[str, EndpointGuard] = {}

    def guard(self, origin: str) -> EndpointGuard:
        found = self._guards.get(origin)
        if found is None:
            breaker = CircuitBreaker(self._threshold, self._cooldown)
            found = self._guards[origin] = EndpointGuard(self._limit, breaker)
        return found

    @asynccontextmanager
    async def calling(self, origin: str) -> AsyncIterator[None]:
        """Wrap one provider call: refuse while open, cap concurrency, record outcome.

        Only transient failures count against the breaker: one customer's revoked
        grant says nothing about the provider's health."""
        guard = self.guard(origin)
        guard.breaker.before()
        async with guard.semaphore:
            try:
                yield
            except TokenFailureError as failure:
                guard.breaker.record(failure.kind is not FailureKind.TRANSIENT)
                raise
            except BaseException:
                guard.breaker.record(False)
                raise
            guard.breaker.record(True)
