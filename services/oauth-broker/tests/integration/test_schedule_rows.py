"""The schedule row's statements on the real database, where two writers meet: the
refresher recording its own write, and the consumer applying the vault's
``credential.refreshed`` for that same write, in either order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from broker_helpers import Broker, new_org
from oauth_broker import repository as repo
from oauth_broker.leases import Leases, Refreshed

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
