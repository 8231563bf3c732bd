"""Events on the real broker: what the vault publishes for each change, and the
usages it keeps from installation's connection events, whatever their order."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted, ConnectionUpdated
from plugboard_contracts.topics import new_event
from plugboard_servicekit import kafka
from plugboard_servicekit.testing import TopicReader
from pydantic import BaseModel

from .conftest import Vault, wait_until

pytestmark = pytest.mark.integration

LIFECYCLE = ("created", "updated", "refreshed", "deleted")


async def live_through_a_lifecycle(vault: Vault, samples: dict[str, Any]) -> str:
    """Create, patch, refresh and delete one oauth2-token credential; its id."""
    cid = (await vault.create("oauth2-token", samples["oauth2-token"]))["id"]
    url = f"/v1/credentials/{cid}"
    await vault.client.patch(url, json={"name": "crm"}, headers=vault.headers())
    await vault.client.post(
        f"{url}:replace-token",
        json={"accessToken": "new", "refreshToken": None, "accessTokenExpiresAt": None},
        headers=vault.headers() | {"If-Match": "2"},
    )
    await vault.client.delete(url, headers=vault.headers())
    return cid


async def test_lifecycle_events_carry_metadata_only(vault: Vault, samples: dict[str, Any]) -> None:
    bootstrap = vault.settings.kafka_bootstrap_servers
    readers = {t: await TopicReader(bootstrap, f"credential.{t}").start() for t in LIFECYCLE}
    try:
        cid = await live_through_a_lifecycle(vault, samples)
        events = {
            t: await reader.events(where=lambda e: e.subject == cid, settle=0.5)
            for t, reader in readers.items()
        }
    finally:
        for reader in readers.values():
            await reader.stop()

    assert {t: len(found) for t, found in events.items()} == dict.fromkeys(LIFECYCLE, 1)
    created_event = events["created"][0]
    assert created_event.orgid == "org-a"
    assert created_event.source == "credential-vault"
    assert created_event.data == {
        "organisationId": "org-a",
        "occurredAt": created_event.data["occurredAt"],
        "credentialId": cid,
        "type": "oauth2-token",
        "name": "oauth2-token credential",
        "version": 1,
        "expiresAt": None,
        "accessTokenExpiresAt": "2031-01-01T00:00:00Z",
        "hasRefreshToken": True,
        "providerAppId": None,
    }
    updated, refreshed = events["updated"][0].data, events["refreshed"][0].data
    assert (updated["version"], updated["name"]) == (2, "crm")
    assert (refreshed["version"], refreshed["hasRefreshToken"]) == (3, False)
    assert refreshed["accessTokenExpiresAt"] is None
    assert events["deleted"][0].data["reason"] == "deleted"
    assert events["deleted"][0].data["version"] == 3


Model = type[ConnectionCreated | ConnectionUpdated | ConnectionDeleted]
TOPICS: dict[Model, str] = {
    ConnectionCreated: "connection.created",
    ConnectionUpdated: "connection.updated",
    ConnectionDeleted: "connection.deleted",
}


def connection_event(
    model: Model, connection_id: UUID, version: int, credential_ids: list[str], org: str = "org-a"
) -> CloudEvent[Any]:
    payload: BaseModel = model(
        organisation_id=org,
        connection_id=connection_id,
        version=version,
        name=f"salesforce-v{version}",
        provider="salesforce",
        credential_ids=[UUID(cid) for cid in credential_ids],
    )
    return new_event(TOPICS[model], source="installation", orgid=org, data=payload)


async def publish_all(vault: Vault, events: list[CloudEvent[Any]]) -> None:
    """Sent in this order without waiting for any effect: the consumer sees them as a
    burst on three topics, so nothing orders one type relative to another."""
    producer = await kafka.create_producer(vault.settings.kafka_bootstrap_servers)
    try:
        sent = [
            await producer.send(e.type, value=e.to_json_bytes(), key=e.subject.encode())
            for e in events
        ]
        for delivery in sent:
            await delivery
    finally:
        await producer.stop()


def out_of_order(
    gone: UUID, kept: UUID, moved: UUID, first: str, second: str, foreign: str
) -> list[CloudEvent[Any]]:
    return [
        # deleted before it was created: the late created/updated must leave no ghost
        connection_event(ConnectionDeleted, gone, 3, [first]),
        connection_event(ConnectionUpdated, gone, 2, [first, second]),
        connection_event(ConnectionCreated, gone, 1, [first]),
        # created twice (a redelivery with a new id), then updated
        connection_event(ConnectionCreated, kept, 1, [first, foreign]),
        connection_event(ConnectionCreated, kept, 1, [first, foreign]),
        connection_event(ConnectionUpdated, kept, 2, [second, foreign]),
        # the update arrives before the create it follows
        connection_event(ConnectionUpdated, moved, 2, [first]),
        connection_event(ConnectionCreated, moved, 1, [second]),
    ]


async def test_usages_end_right_whatever_the_order(vault: Vault, samples: dict[str, Any]) -> None:
    first = (await vault.create("oauth2-token", samples["oauth2-token"]))["id"]
    second = (await vault.create("basic-auth", samples["basic-auth"]))["id"]
    foreign = (await vault.create("string", samples["string"], org="org-b"))["id"]
    gone, kept, moved = uuid4(), uuid4(), uuid4()
    events = out_of_order(gone, kept, moved, first, second, foreign)
    await publish_all(vault, [*events, events[3]])  # and one event delivered twice

    async def all_handled() -> bool:
        ids = [event.id for event in events]
        seen = await vault.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1)", ids)
        return seen == len(set(ids))

    await wait_until(all_handled)

    async def usages(cid: str, org: str = "org-a") -> dict[str, str]:
        body = (await vault.client.get(f"/v1/credentials/{cid}", headers=vault.headers(org))).json()
        return {usage["connection"]["id"]: usage["connection"]["name"] for usage in body["usages"]}

    assert await usages(first) == {str(moved): "salesforce-v2"}
    assert await usages(second) == {str(kept): "salesforce-v2"}
    assert await usages(foreign, org="org-b") == {}, "another org's credential is never used"
    listed = (await vault.client.get("/v1/credentials", headers=vault.headers())).json()
    usage = next(item for item in listed["items"] if item["id"] == second)["usages"][0]
    assert usage["connection"]["provider"] == "salesforce"
    versions = await vault.pool.fetch(
        "SELECT aggregate_id, version, deleted FROM aggregate_versions"
        " WHERE aggregate = $1 AND aggregate_id = ANY($2)",  # other tests share the schema
        "connection",
        [str(gone), str(kept), str(moved)],
    )
    assert {(r["aggregate_id"], r["version"], r["deleted"]) for r in versions} == {
        (str(gone), 3, True),
        (str(kept), 2, False),
        (str(moved), 2, False),
    }
