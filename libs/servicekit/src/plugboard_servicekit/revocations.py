"""Revoked API keys, refused by every service at once (``api_key.revoked``).

installation publishes ``api_key.revoked`` when a key is revoked. Every service that
runs servicekit consumes it with a built-in subscription (``SUBSCRIPTION``, added to
the service's own by the app factory): the handler records the subject in the kit
table ``revoked_subjects`` of the service's schema, in the consumer's transaction
with its inbox row (a redelivery changes nothing), and NOTIFYs the schema's channel.

Only one replica of a service receives the event (one consumer group per service),
so every replica runs a ``RevocationWatcher``: on its own ``db.connect()`` connection
(never a pooled one: LISTEN is session state) it LISTENs first, then loads the rows
that still matter, so a revocation committed in between is either loaded or
notified, and feeds them to the ``TokenVerifier``, whose hot path then costs one
dict lookup. A lost connection is reopened and the table read again (notifications
sent meanwhile are gone). Rows whose ``not_after`` has passed, plus the verifier's
clock skew allowance, refuse nothing any more and are purged on a timer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import ApiKeyRevoked

from plugboard_servicekit.auth import TokenVerifier
from plugboard_servicekit.db import Connection, Keepalive, connect
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.subscriptions import BatchHandler, Subscription, on
from plugboard_servicekit.tasks import cancel_and_wait, close_within, wait_event

log = get_logger(__name__)

TOPIC = "api_key.revoked"
CHANNEL_SUFFIX = "_revoked_subjects"
RETAIN_SECONDS = 60.0
"""Kept past ``not_after`` this long: more than the verifier's clock skew leeway."""

RECORD = """
INSERT INTO revoked_subjects (subject, revoked_at, not_after) VALUES ($1, $2, $3)
ON CONFLICT (subject) DO UPDATE SET
    revoked_at = GREATEST(revoked_subjects.revoked_at, EXCLUDED.revoked_at),
    not_after = GREATEST(revoked_subjects.not_after, EXCLUDED.not_after)
RETURNING revoked_at, not_after
"""
NOTIFY = f"SELECT pg_notify(current_schema() || '{CHANNEL_SUFFIX}', $1)"
LOAD = """
SELECT subject, revoked_at, not_after FROM revoked_subjects
WHERE not_after > now() - make_interval(secs => $1)
"""
PURGE = "DELETE FROM revoked_subjects WHERE not_after < now() - make_interval(secs => $1)"


async def on_api_key_revoked(
    _deps: object, conn: Connection, event: CloudEvent[ApiKeyRevoked]
) -> None:
    """Record the revocation and tell every replica; the NOTIFY goes out on commit,
    together with the row and the inbox entry, or not at all."""
    data = event.data
    row = await conn.fetchrow(RECORD, data.subject, data.revoked_at, data.not_after)
    assert row is not None
    await conn.execute(NOTIFY, _message(data.subject, row["revoked_at"], row["not_after"]))
    log.info("api_key_revoked", subject=data.subject, project_id=str(data.project_id))


SUBSCRIPTION: Subscription[Any] = on(TOPIC, on_api_key_revoked)
"""The built-in subscription every service's consumer runs."""


def with_builtin(subscriptions: Sequence[Subscription[Any]]) -> list[Subscription[Any]]:
    """The service's subscriptions plus the built-in one. A service that subscribes to
    ``api_key.revoked`` itself gets one route for it: the built-in record first, then
    its own handler, in the same transaction (one inbox entry, one offset)."""
    own = [s for s in subscriptions if s.topic == TOPIC]
    rest = [s for s in subscriptions if s.topic != TOPIC]
    if not own:
        return [*rest, SUBSCRIPTION]
    if len(own) > 1:
        raise ValueError(f"{TOPIC} is subscribed twice")
    service = own[0]
    return [*rest, Subscription(TOPIC, handle_batch=_both(service), payload=service.payload)]


def _both(service: Subscription[Any]) -> BatchHandler[Any]:
    async def handle(deps: Any, conn: Connection, events: Sequence[CloudEvent[Any]]) -> None:
        for event in events:
            await on_api_key_revoked(deps, conn, event)
        if service.handle_batch is not None:
            await service.handle_batch(deps, conn, events)
            return
        assert service.handle is not None
        for event in events:
            await service.handle(deps, conn, event)

    return handle


def _message(subject: str, revoked_at: datetime, not_after: datetime) -> str:
    return json.dumps({"s": subject, "r": revoked_at.timestamp(), "n": not_after.timestamp()})


class RevocationWatcher:
    """Keeps one replica's verifier in step with its schema's ``revoked_subjects``."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        pool: asyncpg.Pool,
        verifier: TokenVerifier,
        *,
        purge_interval: float = 60.0,
        retry_backoff: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._pool = pool
        self._verifier = verifier
        self._purge_interval = purge_interval
        self._retry_backoff = retry_backoff
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.state = "starting"

    @property
    def channel(self) -> str:
        return f"{self._schema}{CHANNEL_SUFFIX}"

    def status(self) -> str | None:
        """For ``/readyz`` ``reported``: None while listening (nothing to say), else why
        not. Never gating: the replica still refuses what it already knows."""
        return None if self.state == "listening" else self.state

    async def start(self) -> None:
        """Load before the service serves, so a restarted replica refuses at once; a
        failure here is retried in the background rather than failing start-up."""
        try:
            await self._listen_and_load()
        except Exception as exc:  # noqa: BLE001 - the loop below retries
            self._failed(exc)
        self._task = asyncio.create_task(self._run(), name=f"revocations:{self._schema}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._close()

    async def _run(self) -> None:
        """Reconnect forever, purge on a timer; a lost LISTEN connection wakes it."""
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._listen_and_load()
                await self._purge()
                await wait_event(self._lost, self._purge_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried: revocations must keep flowing
                self._failed(exc)
                await asyncio.sleep(self._retry_backoff)

    async def _listen_and_load(self) -> None:
        await self._close()
        self._lost.clear()
        conn = await connect(self._dsn, self._schema, keepalive=Keepalive())
        self._conn = conn
        conn.add_termination_listener(self._on_terminated)
        await conn.add_listener(self.channel, self._on_notify)
        rows = await conn.fetch(LOAD, RETAIN_SECONDS)
        for row in rows:
            self._verifier.revoke(
                row["subject"], row["revoked_at"].timestamp(), row["not_after"].timestamp()
            )
        self.state = "listening"
        log.info("revocations_loaded", revoked=len(rows))

    async def _purge(self) -> None:
        """Drop what refuses nothing any more: table rows (every replica may run it,
        one indexed DELETE) and the verifier's own expired entries."""
        self._verifier.prune_revoked()
        await self._pool.execute(PURGE, RETAIN_SECONDS)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            self._verifier.revoke(str(message["s"]), float(message["r"]), float(message["n"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("revocation_notice_unreadable", error=type(exc).__name__)

    def _on_terminated(self, _conn: object) -> None:
        self._lost.set()

    def _failed(self, exc: Exception) -> None:
        self.state = f"reconnecting: {type(exc).__name__}"
        log.warning("revocations_listen_failed", error=type(exc).__name__)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await close_within(conn.close())
