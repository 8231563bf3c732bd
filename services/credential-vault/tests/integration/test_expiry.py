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
    settings: VaultSettings, start_vault: Callable[..., Any], postgres_dsn: str
) -> None:
    racing = settings.model_copy(update={"sweep_interval_seconds": 0.1, "sweep_batch_size": 16})
    async with start_vault(racing) as first, start_vault(racing) as second:
        ids = await create_many(first, EXPIRING // 2) + await create_many(second, EXPIRING // 2)
        keeper = (await first.create("string", {"value": "stays"}))["id"]
        extra_pools = [await db.create_pool(postgres_dsn, first.schema) for _ in range(2)]
        await first.pool.execute(
            "UPDATE credentials SET expires_at = now() + interval '1 second' WHERE id = ANY($1)",
            ids,
        )
        await asyncio.sleep(1)
        swept = await asyncio.gather(*(sweep_expired(pool, 8, 2) for pool in extra_pools))

        async def all_gone() -> bool:
            return await first.pool.fetchval("SELECT count(*) FROM credentials") == 1

        await wait_until(all_gone)
        events = await first.read_events("credential.expired", set(ids), expected=EXPIRING)
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
    async with start_vault(idle) as vault:
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        created = await vault.create("string", {"value": "v"}, expiresAt=soon)
        [never] = await create_many(vault, 1)
        await vault.pool.execute(
            "UPDATE credentials SET expires_at = now() + interval '1 hour' WHERE id = $1", never
        )
        await asyncio.sleep(1.2)
        url = f"/v1/credentials/{created['id']}"
        assert (await vault.client.get(url, headers=vault.headers())).status_code == 404
        assert (await vault.reveal(created["id"])).status_code == 404
        listed = await vault.client.get("/v1/credentials", headers=vault.headers())
        assert [item["id"] for item in listed.json()["items"]] == [never]
        assert await vault.pool.fetchval("SELECT count(*) FROM credentials") == 2
        assert await sweep_expired(vault.pool, 100) == 1
        [event] = await vault.read_events("credential.expired", {created["id"]}, expected=1)
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
        assert await keyring_check() == "not loaded"
        blocked = await vault.client.post(
            "/v1/credentials", json={"name": "n", "type": "none"}, headers=vault.headers()
        )
        assert blocked.status_code == 503
        generate_keyring_file(later)

        async def ready() -> bool:
            return (await vault.client.get("/readyz")).status_code == 200

        await wait_until(ready)
        assert (await vault.create("none", {}))["version"] == 1
