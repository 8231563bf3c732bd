"""Health from credential events: set-based, version-guarded, idempotent, and the
events it stages (read from the outbox before the relay and from the topic after)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from installation import consumers
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.payloads import (
    ConnectionUpdated,
    CredentialExpired,
    CredentialRefreshed,
    CredentialRefreshFailed,
    InstallationHealthChanged,
)
from plugboard_contracts.topics import new_event
from plugboard_servicekit.testing import TopicReader, wait_until

from . import helpers
from .conftest import App

pytestmark = pytest.mark.integration


async def _setup(app: App, org: str, groups: int) -> tuple[dict[str, Any], str, UUID]:
    project = await app.project(org)
    integration = await helpers.integration(app, org, project)
    credential = uuid4()
    for n in range(groups):
        cid = await helpers.connection(app, org, project, credential, f"g{n}")
        await helpers.install(app, org, project, integration, cid, f"g{n}")
    return project, integration, credential


async def _health(app: App, credential: UUID) -> list[tuple[str, str]]:
    rows = await app.client.deps.pool.fetch(
        "SELECT i.health_status, c.status FROM installations i JOIN connections c"
        " ON c.id = i.connection_id WHERE c.credential_id = $1", credential,
    )  # fmt: skip
    return sorted({(r["health_status"], r["status"]) for r in rows})


async def _handle(app: App, handler: Any, payload: Any, topic: str) -> None:
    event = new_event(topic, source="credential-vault", orgid=payload.organisation_id,
                      data=payload)  # fmt: skip
    async with app.client.deps.pool.acquire() as conn, conn.transaction():
        await handler(app.client.deps, conn, [event])


def _expired(org: str, credential: UUID, version: int, at: datetime) -> CredentialExpired:
    return CredentialExpired(organisation_id=org, credential_id=credential, version=version,
                             expires_at=at, occurred_at=at,
        type=CredentialType.STRING, name="k")  # fmt: skip


def _refreshed(org: str, credential: UUID, version: int, at: datetime) -> CredentialRefreshed:
    return CredentialRefreshed(organisation_id=org, credential_id=credential, version=version,
                               occurred_at=at,
        type=CredentialType.STRING, name="k")  # fmt: skip


async def _staged(app: App, topic: str) -> int:
    return int(await app.client.deps.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = $1", topic))  # fmt: skip


async def test_expiry_flips_every_installation_once(app: App, org: str) -> None:
    _, _, credential = await _setup(app, org, groups=3)
    now = datetime.now(UTC)
    bootstrap = app.client.settings.kafka_bootstrap_servers
    reader = await TopicReader(bootstrap, "installation.health_changed").start()
    updates = await TopicReader(bootstrap, "connection.updated").start()
    try:
        await _handle(app, consumers.on_credentials_expired, _expired(org, credential, 2, now),
                      "credential.expired")  # fmt: skip
        assert await _health(app, credential) == [("unhealthy", "bad_credentials")]
        events = await reader.events(InstallationHealthChanged, 3, where=lambda e:
                                     e.data.credential_id == credential, settle=0.5)  # fmt: skip
        assert len(events) == 3
        assert {e.data.reason for e in events} == {"credential.expired"}
        assert {e.data.previous_status for e in events} == {"healthy"}
        changed = await updates.events(ConnectionUpdated, 3, where=lambda e:
                                       credential in e.data.credential_ids)  # fmt: skip
        assert {e.data.version for e in changed} == {2}
        # redelivery (same version) and an older refresh change nothing, publish nothing
        await _handle(app, consumers.on_credentials_expired, _expired(org, credential, 2, now),
                      "credential.expired")  # fmt: skip
        old = _refreshed(org, credential, 1, now - timedelta(seconds=5))
        await _handle(app, consumers.on_credentials_refreshed, old, "credential.refreshed")
        assert await _health(app, credential) == [("unhealthy", "bad_credentials")]
        await reader.mark()
        seen = {e.id for e in events}  # at-least-once: a re-send of these is no new event
        await reader.assert_none(
            1.0, where=lambda e: e.data["credentialId"] == str(credential) and e.id not in seen
        )
    finally:
        await reader.stop()
        await updates.stop()


async def test_refresh_failure_then_refresh_heals(app: App, org: str) -> None:
    _, _, credential = await _setup(app, org, groups=2)
    now = datetime.now(UTC)
    retryable = CredentialRefreshFailed(organisation_id=org, credential_id=credential,
                                        error="temporarily_unavailable", retryable=True,
                                        attempts=1, occurred_at=now)  # fmt: skip
    await _handle(app, consumers.on_credentials_refresh_failed, retryable,
                  "credential.refresh_failed")  # fmt: skip
    assert await _health(app, credential) == [("healthy", "created")]
    permanent = retryable.model_copy(update={"retryable": False, "error": "invalid_grant"})
    await _handle(app, consumers.on_credentials_refresh_failed, permanent,
                  "credential.refresh_failed")  # fmt: skip
    assert await _health(app, credential) == [("unhealthy", "bad_credentials")]
    later = _refreshed(org, credential, 3, now + timedelta(seconds=1))
    await _handle(app, consumers.on_credentials_refreshed, later, "credential.refreshed")
    assert await _health(app, credential) == [("healthy", "working")]
    # a failure that happened before the refresh arrives late: stays healthy
    await _handle(app, consumers.on_credentials_refresh_failed, permanent,
                  "credential.refresh_failed")  # fmt: skip
    assert await _health(app, credential) == [("healthy", "working")]


async def test_other_orgs_credential_event_changes_nothing(app: App, org: str) -> None:
    _, _, credential = await _setup(app, org, groups=1)
    now = datetime.now(UTC)
    await _handle(app, consumers.on_credentials_expired, _expired("org-other", credential, 1, now),
                  "credential.expired")  # fmt: skip
    assert await _health(app, credential) == [("healthy", "created")]


async def test_expiry_through_the_broker(app: App, org: str) -> None:
    """The running consumer applies a credential.expired published on its topic."""
    project, integration, credential = await _setup(app, org, groups=1)
    from aiokafka import AIOKafkaProducer

    event = new_event("credential.expired", source="credential-vault", orgid=org,
                      data=_expired(org, credential, 1, datetime.now(UTC)))  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=app.client.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait("credential.expired", event.to_json_bytes(),
                                     key=str(credential).encode())  # fmt: skip
    finally:
        await producer.stop()

    async def unhealthy() -> bool:
        return await _health(app, credential) == [("unhealthy", "bad_credentials")]

    await wait_until(unhealthy, 30.0)
    url = f"/v1/projects/{project['id']}/integrations/{integration}/installations"
    listed = (await app.client.get(url, headers=app.headers(org))).json()
    assert [i["healthStatus"] for i in listed["installations"]] == ["unhealthy"]


async def test_health_events_are_staged_before_connection_updates(app: App, org: str) -> None:
    """Subscribers wait for installation.health_changed: those rows take the lower outbox
    ids (the relay publishes in id order), every connection.updated of the change after."""
    _, _, credential = await _setup(app, org, groups=4)
    now = datetime.now(UTC)
    event = new_event("credential.expired", source="credential-vault", orgid=org,
                      data=_expired(org, credential, 2, now))  # fmt: skip
    topics = ["installation.health_changed", "connection.updated"]
    async with app.client.deps.pool.acquire() as conn, conn.transaction():
        await consumers.on_credentials_expired(app.client.deps, conn, [event])
        staged = await conn.fetch(  # inside the change's transaction: not sent yet
            "SELECT topic FROM outbox WHERE topic = ANY($1::text[]) AND convert_from(payload,"
            " 'UTF8')::jsonb -> 'data' ->> 'organisationId' = $2 ORDER BY id", topics, org,
        )  # fmt: skip
    assert [r["topic"] for r in staged] == [topics[0]] * 4 + [topics[1]] * 4
