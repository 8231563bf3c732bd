"""Events on the real broker: what the vault publishes for each change, and the
usages it keeps from installation's connection events."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted, ConnectionUpdated
from plugboard_contracts.topics import new_event
from plugboard_servicekit import kafka
from pydantic import BaseModel

from .conftest import Vault, wait_until

pytestmark = pytest.mark.integration


async def test_lifecycle_events_carry_metadata_only(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("oauth2-token", samples["oauth2-token"])
    cid = created["id"]
    url = f"/v1/credentials/{cid}"
    await vault.client.patch(url, json={"name": "crm"}, headers=vault.headers())
    await vault.client.post(
        f"{url}:replace-token",
        json={"accessToken": "new", "refreshToken": None, "accessTokenExpiresAt": None},
        headers=vault.headers() | {"If-Match": "2"},
    )
    await vault.client.delete(url, headers=vault.headers())

    topics = ("created", "updated", "refreshed", "deleted")
    events = {t: await vault.read_events(f"credential.{t}", {cid}, expected=1) for t in topics}
    assert {t: len(found) for t, found in events.items()} == dict.fromkeys(topics, 1)
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


async def publish(vault: Vault, event_type: str, payload: BaseModel, org: str) -> None:
    producer = await kafka.create_producer(vault.settings.kafka_bootstrap_servers)
    try:
        event = new_event(event_type, source="installation", orgid=org, data=payload)
        await producer.send_and_wait(
            event_type, value=event.to_json_bytes(), key=event.subject.encode()
        )
    finally:
        await producer.stop()


def connection(
    model: type[ConnectionCreated | ConnectionUpdated | ConnectionDeleted],
    connection_id: UUID,
    credential_ids: list[str],
    org: str = "org-a",
) -> BaseModel:
    return model(
        organisation_id=org,
        connection_id=connection_id,
        name="salesforce-prod",
        provider="salesforce",
        credential_ids=[UUID(cid) for cid in credential_ids],
    )


async def test_usages_follow_connection_events(vault: Vault, samples: dict[str, Any]) -> None:
    first = (await vault.create("oauth2-token", samples["oauth2-token"]))["id"]
    second = (await vault.create("basic-auth", samples["basic-auth"]))["id"]
    foreign = (await vault.create("string", samples["string"], org="org-b"))["id"]
    conn_id = uuid4()

    async def usages(cid: str, org: str = "org-a") -> list[str]:
        body = (await vault.client.get(f"/v1/credentials/{cid}", headers=vault.headers(org))).json()
        return [usage["connection"]["id"] for usage in body["usages"]]

    async def await_usages(expected: dict[str, list[str]]) -> None:
        async def matches() -> bool:
            return {cid: await usages(cid) for cid in expected} == expected

        await wait_until(matches)

    created = connection(ConnectionCreated, conn_id, [first, foreign])
    await publish(vault, "connection.created", created, "org-a")
    await await_usages({first: [str(conn_id)], second: []})
    assert await usages(foreign, org="org-b") == []

    updated = connection(ConnectionUpdated, conn_id, [second])
    await publish(vault, "connection.updated", updated, "org-a")
    await await_usages({first: [], second: [str(conn_id)]})
    listed = (await vault.client.get("/v1/credentials", headers=vault.headers())).json()
    usage = next(item for item in listed["items"] if item["id"] == second)["usages"][0]
    assert usage["connection"]["name"] == "salesforce-prod"
    assert usage["connection"]["provider"] == "salesforce"

    deleted = connection(ConnectionDeleted, conn_id, [second])
    await publish(vault, "connection.deleted", deleted, "org-a")
    await await_usages({first: [], second: []})
