"""Expiry: delete credentials whose ``expiresAt`` passed and announce ``credential.expired``.

Every replica runs the sweeper. A batch is one set-based statement (see
``repository.expire_batch``): lock due rows with ``FOR UPDATE SKIP LOCKED`` (so
replicas take disjoint rows), delete them, write their audit rows and stage their
events in the outbox. A credential is therefore expired, audited and announced
exactly once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
from plugboard_contracts.topics import CATALOGUE
from plugboard_servicekit import telemetry
from plugboard_servicekit.logging import get_logger

from credential_vault import repository as repo
from credential_vault.events import SOURCE

ACTOR = "system:expiry-sweeper"
_MIN_DELAY = 0.05

log = get_logger(__name__)


def _expired_event_spec() -> repo.ExpiredEventSpec:
    spec = CATALOGUE["credential.expired"]
    headers = telemetry.inject_traceparent()
    return repo.ExpiredEventSpec(spec.type, SOURCE, spec.dataschema, headers)


async def sweep_batch(pool: asyncpg.Pool, batch_size: int) -> int:
    """Expire at most ``batch_size`` credentials; returns how many."""
    return await repo.expire_batch(pool, batch_size, ACTOR, _expired_event_spec())


async def _sweep_loop(pool: asyncpg.Pool, batch_size: int) -> int:
    total = 0
    while True:
        swept = await sweep_batch(pool, batch_size)
        total += swept
        if swept < batch_size:
            return total


async def sweep_expired(pool: asyncpg.Pool, batch_size: int, concurrency: int = 1) -> int:
    """Expire everything due now; returns the total.

    ``concurrency`` batch loops run at once on separate connections (the database
    does the work, so they use its cores); ``SKIP LOCKED`` keeps them disjoint.
    """
    swept = await asyncio.gather(*(_sweep_loop(pool, batch_size) for _ in range(concurrency)))
    return sum(swept)


async def _delay_until_next(pool: asyncpg.Pool, interval: float) -> float:
    """Sleep until the next expiry when it comes before the next regular sweep."""
    upcoming = await repo.next_expiry(pool)
    if upcoming is None:
        return interval
    return max(_MIN_DELAY, min(interval, (upcoming - datetime.now(UTC)).total_seconds()))


async def run_sweeper(
    pool: asyncpg.Pool, interval: float, batch_size: int, concurrency: int
) -> None:
    """Sweep forever; a database outage only delays expiry."""
    while True:
        delay = interval
        try:
            swept = await sweep_expired(pool, batch_size, concurrency)
            if swept:
                log.info("credentials_expired", count=swept)
            delay = await _delay_until_next(pool, interval)
        except Exception as exc:  # noqa: BLE001 - the sweeper must outlive any outage
            log.warning("expiry_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(delay)
