"""Revoking an API key announces it once (``api_key.revoked`` through the outbox), so
every service can refuse the key's tokens; a repeated revoke announces nothing."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import ApiKeyRevoked
from plugboard_servicekit.testing import TopicReader

from .conftest import App

pytestmark = pytest.mark.integration


async def test_revoke_publishes_api_key_revoked_once(app: App, org: str) -> None:
    project = await app.project(org)
    base = f"/v1/projects/{project['id']}/api-keys"
    made = await app.client.post(
        base, json={"label": "ci", "scopes": ["projects:read"]}, headers=app.headers(org)
    )
    key = made.json()
    bootstrap = app.client.settings.kafka_bootstrap_servers
    async with TopicReader(bootstrap, "api_key.revoked") as reader:
        for _ in range(2):
            gone = await app.client.delete(f"{base}/{key['id']}", headers=app.headers(org))
            assert gone.status_code == 204

        def mine(event: CloudEvent[ApiKeyRevoked]) -> bool:
            return event.subject == key["id"]

        [event] = await reader.events(ApiKeyRevoked, where=mine, settle=2.0)
    data = event.data
    assert event.orgid == org
    assert data.key_id == UUID(key["id"])
    assert data.project_id == UUID(project["id"])
    assert data.subject == f"apikey:{project['id']}:{key['id']}"
    ttl = app.client.settings.token_ttl_seconds
    assert data.not_after - data.revoked_at == timedelta(seconds=ttl)
    assert key["key"] not in event.model_dump_json()
