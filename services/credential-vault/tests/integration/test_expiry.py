"""Expiry on the real broker: with two replicas (and extra sweepers) racing, every
expired credential is deleted, audited and announced exactly once; an expired
credential is gone for readers before the sweep; readiness waits for the key ring."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from credential_vault.keyring import generate_keyring_file
from credential_vault.settings import VaultSettings
from credential_vault.sweeper import sweep_expired
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import CredentialExpired
from plugboard_contracts.topics import new_event
from plugboard_servicekit import db
from plugboard_servicekit.testing import TopicReader

from .conftest import Vault, wait_until

pytestmark = pytest.mark.integration

EXPIRING = 240


async def create_many(vault: Vault, count: int, org: str = "org-a") -> list[str]:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return [
        (await vault.create("string", {"value": f"v{n}"}, org=org, expiresAt=later))["id"]
        for n in range(count)
    ]


async def test_two_replicas_expire_each_credential_exactly_once(
    settings: VaultSettings, start_vault: Callable[..., Any]
) -> None:
    racing = settings.model_copy(update={"sweep_interval_seconds": 0.1, "sweep_batch_size": 16})
    reader = TopicReader(settings.kafka_bootstrap_servers, "credential.expired")
    async with reader, start_vault(racing) as first, start_vault(racing) as second:
        ids = await create_many(first, EXPIRING // 2) + await create_many(second, EXPIRING // 2)
        keeper = (await first.create("string", {"value": "stays"}))["id"]
        role_dsn = first.settings.database_url
        extra_pools = [await db.create_pool(role_dsn, first.schema) for _ in range(2)]
        await first.pool.execute(
            "UPDATE credentials SET expires_at = now() + interval '1 second' WHERE id = ANY($1)",
            ids,
        )
        await asyncio.sleep(1)
        swept = await asyncio.gather(*(sweep_expired(pool, 8, 2) for pool in extra_pools))

        async def all_gone() -> bool:
            return await first.pool.fetchval("SELECT count(*) FROM credentials") == 1

        await wait_until(all_gone)
        expiring = set(ids)
        events = await reader.events(
            count=EXPIRING, where=lambda e: e.subject in expiring, settle=1.0
        )
        for pool in extra_pools:
            await pool.close()
        audits = await first.pool.fetch(
            "SELECT credential_id, actor FROM audit_log WHERE action = 'expire'"
        )
        remaining = await first.client.get(f"/v1/credentials/{keeper}", headers=first.headers())

    assert Counter(event.subject for event in events) == Counter(ids)
    assert len({event.id for event in events}) == EXPIRING, "every event has its own id"
    assert {event.data["reason"] for event in events} == {"expired"}
    assert all(event.data["expiresAt"] and event.orgid == "org-a" for event in events)
    assert Counter(str(row["credential_id"]) for row in audits) == Counter(ids)
    assert {row["actor"] for row in audits} == {"system:expiry-sweeper"}
    assert remaining.status_code == 200
    assert sum(swept) < EXPIRING, "the replicas' own sweepers took part"


async def test_expired_is_gone_for_readers_before_the_sweep(
    settings: VaultSettings, start_vault: Callable[..., Any]
) -> None:
    idle = settings.model_copy(update={"sweep_interval_seconds": 3600})
    reader = TopicReader(settings.kafka_bootstrap_servers, "credential.expired")
    async with reader, start_vault(idle) as vault:
        [created_id] = await create_many(vault, 1)
        [never] = await create_many(vault, 1)
        # Behind the sweeper's back (no trigger fires for a replica session, so it is not
        # woken): readers must not depend on the sweep to stop seeing an expired one.
        admin = await db.connect(settings.database_url, vault.schema)
        try:
            async with admin.transaction():
                await admin.execute("SET LOCAL session_replication_role = replica")
                await admin.execute(
                    "UPDATE credentials SET expires_at = now() + interval '1 second' WHERE id = $1",
                    created_id,
                )
        finally:
            await admin.close()
        await vault.pool.execute(
            "UPDATE credentials SET expires_at = now() + interval '1 hour' WHERE id = $1", never
        )
        created = (
            await vault.client.get(f"/v1/credentials/{created_id}", headers=vault.headers())
        ).json()
        await asyncio.sleep(1.2)
        url = f"/v1/credentials/{created['id']}"
        assert (await vault.client.get(url, headers=vault.headers())).status_code == 404
        assert (await vault.reveal(created["id"])).status_code == 404
        listed = await vault.client.get("/v1/credentials", headers=vault.headers())
        assert [item["id"] for item in listed.json()["items"]] == [never]
        assert await vault.pool.fetchval("SELECT count(*) FROM credentials") == 2
        assert await sweep_expired(vault.pool, 100) == 1
        [event] = await reader.events(where=lambda e: e.subject == created["id"], settle=0.5)
    assert_matches_contract(event, created)


def assert_matches_contract(event: CloudEvent[dict[str, Any]], created: dict[str, Any]) -> None:
    """The envelope the sweeper builds in SQL equals the contracts' own, bar id and times."""
    strict = CloudEvent[CredentialExpired].model_validate(event.model_dump())
    payload = CredentialExpired(
        organisation_id="org-a",
        credential_id=UUID(created["id"]),
        type=CredentialType.STRING,
        name=created["name"],
        version=1,
        expires_at=datetime.fromisoformat(created["expiresAt"]),
    )
    expected = new_event(
        "credential.expired", source="credential-vault", orgid="org-a", data=payload
    )
    volatile = {"id": True, "time": True, "data": {"occurred_at"}}
    assert strict.model_dump(exclude=volatile) == expected.model_dump(exclude=volatile)
    assert set(event.model_dump()) == set(expected.model_dump())
    assert strict.id.version == 7
    assert abs(strict.time - strict.data.occurred_at) < timedelta(seconds=5)


async def test_not_ready_until_the_key_ring_loads(
    settings: VaultSettings, start_vault: Callable[..., Any], tmp_path: Path
) -> None:
    later = tmp_path / "later" / "keyring.json"
    async with start_vault(
        settings.model_copy(update={"keyring_file": later}), ready=False
    ) as vault:

        async def keyring_check() -> str:
            return (await vault.client.get("/readyz")).json()["checks"].get("keyring", "ok")

        response = await vault.client.get("/readyz")
        assert response.status_code == 503
        assert (await keyring_check()).startswith("not loaded")
        blocked = await vault.client.post(
            "/v1/credentials", json={"name": "n", "type": "none"}, headers=vault.headers()
        )
        assert blocked.status_code == 503
        generate_keyring_file(later)

        async def ready() -> bool:
            return (await vault.client.get("/readyz")).status_code == 200

        await wait_until(ready)
        assert (await vault.create("none", {}))["version"] == 1


async def test_sweeper_wakes_for_an_expiry_sooner_than_its_next_wake_up(
    settings: VaultSettings, start_vault: Callable[..., Any]
) -> None:
    """With an hour between sweeps and nothing due, the sweeper sleeps an hour; a write
    that sets an expiry two seconds out (a create, then a patch) must still be expired
    and announced right away, not at the next sweep."""
    idle = settings.model_copy(update={"sweep_interval_seconds": 3600})
    reader = TopicReader(settings.kafka_bootstrap_servers, "credential.expired")
    async with reader, start_vault(idle) as vault:
        [later] = await create_many(vault, 1)  # a day out: the sweeper plans an hour's sleep
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        created = await vault.create("string", {"value": "v"}, expiresAt=soon)
        patched = await vault.client.patch(
            f"/v1/credentials/{later}",
            json={"expiresAt": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()},
            headers=vault.headers(),
        )
        assert patched.status_code == 200
        due = {created["id"], later}
        # Bound: far below the hour's sweep interval, loose enough for a loaded machine.
        events = await reader.events(count=2, timeout=20, where=lambda e: e.subject in due)
    assert {event.subject for event in events} == due
