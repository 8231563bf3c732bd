"""When to refresh a token, and how long to wait after a failure.

A fixed margin ("refresh 5 minutes before expiry") refreshes a provider's
60-second tokens on every call; so the margin is capped at half the token's
lifetime. A token without ``expires_in`` gets a configurable default lifetime
instead of living forever (the peer never refreshes those), and a keep-alive
refresh keeps idle refresh tokens from expiring at providers that expire unused
ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RefreshTiming:
    margin: timedelta = timedelta(minutes=5)
    default_lifetime: timedelta = timedelta(hours=1)
    keepalive: timedelta = timedelta(hours=24)
    keepalive_jitter: float = 0.1
    """Fraction of ``keepalive`` spread either way, so a fleet imported at once spreads."""

    def margin_for(self, lifetime: timedelta, override: timedelta | None = None) -> timedelta:
        """The margin for one token: the provider override or the default, at most half
        the lifetime."""
        wanted = self.margin if override is None else override
        return max(timedelta(0), min(wanted, lifetime / 2))

    def effective_expiry(self, expires_at: datetime | None, issued_at: datetime) -> datetime:
        return expires_at if expires_at is not None else issued_at + self.default_lifetime

    def due_at(
        self,
        expires_at: datetime | None,
        issued_at: datetime,
        *,
        override: timedelta | None = None,
        refreshable: bool = True,
        rng: random.Random | None = None,
    ) -> datetime:
        """When the scheduler refreshes: expiry minus margin, or the keep-alive if sooner."""
        expiry = self.effective_expiry(expires_at, issued_at)
        lifetime = max(expiry - issued_at, timedelta(0))
        due = expiry - self.margin_for(lifetime, override)
        if refreshable and self.keepalive > timedelta(0):
            spread = (rng or random).uniform(-self.keepalive_jitter, self.keepalive_jitter)
            due = min(due, issued_at + self.keepalive * (1 + spread))
        return due

    def needs_refresh(
        self,
        expires_at: datetime | None,
        issued_at: datetime,
        now: datetime,
        *,
        min_validity: timedelta | None = None,
        override: timedelta | None = None,
    ) -> bool:
        """The hot path's question: is the current token good enough to hand out?"""
        expiry = self.effective_expiry(expires_at, issued_at)
        lifetime = max(expiry - issued_at, timedelta(0))
        needed = self.margin_for(lifetime, override)
        if min_validity is not None:
            needed = max(needed, min(min_validity, lifetime / 2) if lifetime else min_validity)
        return expiry - now <= needed


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog), honouring Retry-After."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> timedelta:
        """Delay before retry number ``attempt`` (1 = after the first failure)."""
        ceiling = min(self.cap, self.base * (2 ** max(attempt - 1, 0)))
        jittered = timedelta(seconds=(rng or random).uniform(0, ceiling.total_seconds()))
        jittered = max(jittered, self.base / 2 if attempt == 1 else timedelta(0))
        if retry_after is not None:
            jittered = max(jittered, timedelta(seconds=min(retry_after, self.cap.total_seconds())))
        return jittered
