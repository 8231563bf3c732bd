"""Expiry: delete credentials whose ``expiresAt`` passed and announce ``credential.expired``.

Every replica runs the sweeper. A batch is one set-based statement (see
``expiry_repository.expire_batch``): lock due rows with ``FOR UPDATE SKIP LOCKED`` (so
replicas take disjoint rows), delete them, write their audit rows and stage their
events in the outbox. A credential is therefore expired, audited and announced
exactly once.

When it sleeps: until the earliest stored expiry, or the sweep interval if that
comes first. A write that sets an expiry sooner than that wake-up must not wait
for it (subscribers count their 2 s from ``expiresAt``), so the database
announces every expiry it stores (``NOTIFY <schema>.credential_expiry`` from a
trigger, on commit, payload the epoch seconds) and the sweeper, listening on a
connection of its own, wakes early for one that is due before its planned
wake-up. Without that connection (an outage) it falls back to the timer.
"""

from __future__ import annotations

import asyncio
import math
import time

import asyncpg
from plugboard_contracts.topics import CATALOGUE
from plugboard_servicekit import db, telemetry
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.tasks import wait_event

from credential_vault import expiry_repository as expiry_repo
from credential_vault.events import SOURCE

ACTOR = "system:expiry-sweeper"
CHANNEL = "credential_expiry"
_MIN_DELAY = 0.05

log = get_logger(__name__)


def _expired_event_spec() -> expiry_repo.ExpiredEventSpec:
    spec = CATALOGUE["credential.expired"]
    headers = telemetry.inject_traceparent()
    return expiry_repo.ExpiredEventSpec(spec.type, SOURCE, spec.dataschema, headers)


async def sweep_batch(pool: asyncpg.Pool, batch_size: int) -> int:
    """Expire at most ``batch_size`` credentials; returns how many."""
    return await expiry_repo.expire_batch(pool, batch_size, ACTOR, _expired_event_spec())


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


class Alarm:
    """Expiries notified since the last sweep, and the sleep they can cut short."""

    def __init__(self) -> None:
        self._noted = math.inf
        self._sooner = asyncio.Event()

    def reset(self) -> None:
        """Before a sweep: what it will see needs no wake-up of its own."""
        self._noted = math.inf

    def notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """asyncpg listener (runs on the event loop): remember the earliest expiry stored."""
        try:
            due = float(payload)
        except ValueError:
            return
        if due < self._noted:
            self._noted = due
            self._sooner.set()

    async def sleep_until(self, wake_at: float) -> None:
        """Sleep until ``wake_at`` (epoch seconds), or an expiry notified as due sooner."""
        while True:
            self._sooner.clear()
            delay = max(_MIN_DELAY, min(wake_at, self._noted) - time.time())
            if not await wait_event(self._sooner, delay):
                return


async def _listen(dsn: str, schema: str, alarm: Alarm) -> asyncpg.Connection | None:
    """A connection of its own (``LISTEN`` is session state: never on a pooled one)."""
    try:
        conn = await db.connect(dsn, schema)
        await conn.add_listener(f"{schema}.{CHANNEL}", alarm.notified)
    except Exception as exc:  # noqa: BLE001 - the timer still wakes the sweeper
        log.warning("expiry_listen_failed", error=type(exc).__name__)
        return None
    return conn


async def _next_wake(pool: asyncpg.Pool, interval: float) -> float:
    """Epoch seconds of the next sweep: the earliest expiry, or one interval from now."""
    wake_at = time.time() + interval
    upcoming = await expiry_repo.next_expiry(pool)
    if upcoming is not None:
        wake_at = min(wake_at, upcoming.timestamp())
    return wake_at


async def _sweep_once(pool: asyncpg.Pool, interval: float, batch_size: int, workers: int) -> float:
    """One sweep; returns when to wake next. A database outage only delays expiry."""
    try:
        swept = await sweep_expired(pool, batch_size, workers)
        if swept:
            log.info("credentials_expired", count=swept)
        return await _next_wake(pool, interval)
    except Exception as exc:  # noqa: BLE001 - the sweeper must outlive any outage
        log.warning("expiry_sweep_failed", error=type(exc).__name__)
        return time.time() + interval


async def run_sweeper(
    pool: asyncpg.Pool,
    interval: float,
    batch_size: int,
    concurrency: int,
    *,
    dsn: str | None = None,
    schema: str | None = None,
) -> None:
    """Sweep forever; with ``dsn`` and ``schema``, wake early for expiries written since."""
    alarm = Alarm()
    listener: asyncpg.Connection | None = None
    try:
        while True:
            if (
                dsn is not None
                and schema is not None
                and (listener is None or listener.is_closed())
            ):
                listener = await _listen(dsn, schema, alarm)
            alarm.reset()
            wake_at = await _sweep_once(pool, interval, batch_size, concurrency)
            await alarm.sleep_until(wake_at)
    finally:
        if listener is not None and not listener.is_closed():
            await listener.close(timeout=2)
