"""The schedule row's statements on the real database, where two writers meet: the
refresher recording its own write, and the consumer applying the vault's
``credential.refreshed`` for that same write, in either order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from broker_helpers import Broker, new_org
from oauth_broker import repository as repo
from oauth_broker.consumers import on_credential_states
from oauth_broker.leases import Leases, Refreshed
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import CredentialRefreshed
from plugboard_contracts.topics import new_event
from plugboard_servicekit import db
from plugboard_servicekit.testing import wait_until

pytestmark = pytest.mark.integration
OWNER = "oauth-broker:test"


async def _leased_row(broker: Broker) -> tuple[repo.TokenRow, datetime]:
    cid, org, now = uuid4(), new_org(), datetime.now(UTC)
    await broker.deps.pool.execute(
        repo.UPSERT_TOKEN, cid, org, "config:x", 1, True, now, now, now, None, None
    )
    [row] = [
        r for r in await repo.claim_due(broker.deps.pool, OWNER, 100, 30) if r.credential_id == cid
    ]
    return row, now


async def _record(broker: Broker, row: repo.TokenRow, version: int, due: datetime) -> bool:
    leases = Leases(broker.deps.pool, OWNER, 30)
    return await leases.record(row, Refreshed(version, due, due, due, True))


@pytest.mark.parametrize("consumer_first", [True, False])
async def test_the_refresh_is_recorded_and_the_lease_released_in_either_order(
    broker: Broker, consumer_first: bool
) -> None:
    row, now = await _leased_row(broker)
    due = now + timedelta(hours=1)
    event_args = (row.credential_id, row.org_id, None, 2, True, due, now, due, None, None)
    if consumer_first:
        await broker.deps.pool.execute(repo.UPSERT_TOKEN, *event_args)
    assert await _record(broker, row, 2, due)
    if not consumer_first:
        await broker.deps.pool.execute(repo.UPSERT_TOKEN, *event_args)
    stored = await repo.get_token(broker.deps.pool, row.org_id, row.credential_id)
    assert stored is not None
    assert (stored.vault_version, stored.lease_owner, stored.due_at) == (2, None, due)
    refreshes = await broker.deps.pool.fetchval(
        "SELECT refreshes FROM tokens WHERE credential_id = $1", row.credential_id
    )
    assert refreshes == 1


async def test_an_older_write_never_overwrites_a_newer_version(broker: Broker) -> None:
    row, now = await _leased_row(broker)
    later = now + timedelta(hours=2)
    newer = (row.credential_id, row.org_id, None, 3, True, later, now, later, None, None)
    await broker.deps.pool.execute(repo.UPSERT_TOKEN, *newer)
    assert not await _record(broker, row, 2, now + timedelta(hours=1))
    stored = await repo.get_token(broker.deps.pool, row.org_id, row.credential_id)
    assert stored is not None
    assert (stored.vault_version, stored.due_at) == (3, later)


async def test_a_consumer_batch_locks_its_rows_in_id_order(broker: Broker) -> None:
    """The credential events of one partition arrive in offset order, but their rows are
    written in id order, the order RECORD_REFRESHES and RENEW_LEASES lock in, so a
    consumer batch and a refresh batch over the same rows cannot deadlock. Probe: hold
    the lower id; the batch (events for the higher id first) must then wait on it
    without having locked the higher one."""
    org, now = new_org(), datetime.now(UTC)
    low, high = sorted([uuid4(), uuid4()])
    pool = broker.deps.pool
    for cid in (low, high):
        await pool.execute(repo.UPSERT_TOKEN, cid, org, "config:x", 1, True, now, now, now, None,
                           None)  # fmt: skip
    events = [_refreshed(org, cid, version=2) for cid in (high, low)]
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM tokens WHERE credential_id = $1 FOR UPDATE", low)
        batch = asyncio.create_task(_apply_batch(broker, events))
        await wait_until(lambda: _waits_on_a_lock(pool), message="the batch never blocked")
        async with pool.acquire() as probe, probe.transaction():
            free = await probe.fetchval(
                "SELECT credential_id FROM tokens WHERE credential_id = $1 FOR UPDATE SKIP LOCKED",
                high,
            )
        assert free == high, "the batch locked the higher id before the lower one"
    await batch
    versions = await pool.fetch(
        "SELECT vault_version FROM tokens WHERE credential_id = ANY($1::uuid[])", [low, high]
    )
    assert [r["vault_version"] for r in versions] == [2, 2]


def _refreshed(org: str, cid: UUID, version: int) -> CloudEvent[Any]:
    expires = datetime.now(UTC) + timedelta(hours=1)
    data = CredentialRefreshed(organisation_id=org, credential_id=cid, name="t", version=version,
                               type=CredentialType.OAUTH2_TOKEN, has_refresh_token=True,
                               access_token_expires_at=expires)  # fmt: skip
    return new_event("credential.refreshed", source="test", orgid=org, data=data)


async def _apply_batch(broker: Broker, events: list[CloudEvent[Any]]) -> None:
    async with broker.deps.pool.acquire() as conn, conn.transaction():
        await on_credential_states(broker.deps, conn, events)


async def _waits_on_a_lock(pool: asyncpg.Pool) -> bool:
    waiting = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%INSERT INTO tokens%'"
    )
    return bool(waiting)


async def test_a_lease_with_a_provider_call_left_is_confirmed_by_the_clock_alone(
    broker: Broker, postgres_dsn: str
) -> None:
    """Fresh from its claim, a 30 s lease has more than a 10 s provider call left: the
    fencing check needs no statement (it holds with no database to ask). With less
    than a call left, it asks Postgres, which still knows the lease as this owner's."""
    row, _ = await _leased_row(broker)
    unreachable = await db.create_pool(postgres_dsn, "oauth", max_size=1)
    await unreachable.close()
    assert await Leases(unreachable, OWNER, 30, call_seconds=10).still_ours(row)
    with pytest.raises(asyncpg.InterfaceError):
        await Leases(unreachable, OWNER, 30, call_seconds=29.5).still_ours(row)
    assert await Leases(broker.deps.pool, OWNER, 30, call_seconds=29.5).still_ours(row)
    assert not await Leases(broker.deps.pool, "oauth-broker:other", 30).still_ours(row)


async def test_the_consumer_skips_exactly_the_states_the_upsert_would_not_apply(
    broker: Broker,
) -> None:
    """``stale_states`` (the consumer's read before writing) against the upsert itself,
    over every stored row (unbound or bound, deleted or not) and incoming state (an
    older, equal or newer version; with or without a config key)."""
    pool, org, now = broker.deps.pool, new_org(), datetime.now(UTC)
    states: list[tuple[UUID, int, str | None]] = []
    for bound in (None, "config:x"):
        for deleted in (False, True):
            cid = uuid4()
            await pool.execute(repo.UPSERT_TOKEN, cid, org, bound, 2, True, now, now, now,
                               None, None)  # fmt: skip
            if deleted:
                await pool.execute(repo.DELETE_TOKEN, cid, org, 2)
            states += [(cid, v, key) for v in (1, 2, 3) for key in (None, "app:y")]
    states.append((uuid4(), 1, None))  # no row yet
    skipped = await repo.stale_states(pool, states)
    applied: set[tuple[UUID, int, str | None]] = set()
    for state in states:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            args = (state[0], org, state[2], state[1], True, now, now, now, None, None)
            if await conn.fetchval(repo.UPSERT_TOKEN, *args):
                applied.add(state)
            await transaction.rollback()
    assert skipped == set(states) - applied
    assert len(applied) == 6  # newer versions (4), a binding of the unbound row, a new row
