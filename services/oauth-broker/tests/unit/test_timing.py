"""Refresh margins, default lifetimes, keep-alive and backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from oauth_broker.domain.timing import Backoff, RefreshTiming

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_default_margin_is_five_minutes() -> None:
    timing = RefreshTiming(keepalive=timedelta(0))
    assert timing.due_at(T0 + timedelta(hours=1), T0) == T0 + timedelta(minutes=55)


def test_margin_never_exceeds_half_the_lifetime() -> None:
    timing = RefreshTiming(keepalive=timedelta(0))
    assert timing.due_at(T0 + timedelta(seconds=60), T0) == T0 + timedelta(seconds=30)
    assert not timing.needs_refresh(T0 + timedelta(seconds=60), T0, T0 + timedelta(seconds=10))
    assert timing.needs_refresh(T0 + timedelta(seconds=60), T0, T0 + timedelta(seconds=30))


def test_provider_override() -> None:
    timing = RefreshTiming(keepalive=timedelta(0))
    due = timing.due_at(T0 + timedelta(hours=2), T0, override=timedelta(minutes=20))
    assert due == T0 + timedelta(minutes=100)


def test_token_without_expiry_gets_the_default_lifetime() -> None:
    timing = RefreshTiming(default_lifetime=timedelta(hours=2), keepalive=timedelta(0))
    assert timing.due_at(None, T0) == T0 + timedelta(hours=2) - timedelta(minutes=5)


def test_keepalive_bounds_long_lived_tokens() -> None:
    timing = RefreshTiming(keepalive=timedelta(hours=24), keepalive_jitter=0.1)
    due = timing.due_at(T0 + timedelta(days=60), T0, rng=random.Random(1))
    assert T0 + timedelta(hours=21.6) <= due <= T0 + timedelta(hours=26.4)
    assert timing.due_at(T0 + timedelta(days=60), T0, refreshable=False) > T0 + timedelta(days=59)


def test_min_validity_asks_for_more() -> None:
    timing = RefreshTiming()
    expiry = T0 + timedelta(hours=1)
    now = T0 + timedelta(minutes=40)
    assert not timing.needs_refresh(expiry, T0, now)
    assert timing.needs_refresh(expiry, T0, now, min_validity=timedelta(minutes=25))


@given(st.integers(min_value=1, max_value=10**7), st.integers(min_value=0, max_value=10**6))
def test_due_is_within_the_lifetime(lifetime: int, margin: int) -> None:
    timing = RefreshTiming(margin=timedelta(seconds=margin), keepalive=timedelta(0))
    expiry = T0 + timedelta(seconds=lifetime)
    due = timing.due_at(expiry, T0)
    assert T0 + timedelta(seconds=lifetime) / 2 <= due <= expiry


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_bounded(attempt: int, seed: int) -> None:
    backoff = Backoff(base=timedelta(seconds=30), cap=timedelta(hours=1))
    delay = backoff.delay(attempt, rng=random.Random(seed))
    assert timedelta(0) <= delay <= timedelta(hours=1)


def test_backoff_honours_retry_after() -> None:
    backoff = Backoff(base=timedelta(seconds=1))
    assert backoff.delay(1, retry_after=120, rng=random.Random(3)) >= timedelta(seconds=120)
