"""The order in which one health change stages its events: subscribers wait for
``installation.health_changed``, so those take the lower outbox ids (the relay
publishes in id order) and every ``connection.updated`` of the change follows."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from installation import consumers
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.payloads import CredentialExpired
from plugboard_contracts.topics import new_event

from . import helpers
from .conftest import App

pytestmark = pytest.mark.integration
GROUPS = 4


async def test_health_events_are_staged_before_connection_updates(app: App, org: str) -> None:
    project = await app.project(org)
    integration = await helpers.integration(app, org, project)
    credential = uuid4()
    for n in range(GROUPS):
        connection = await helpers.connection(app, org, project, credential, f"g{n}")
        await helpers.install(app, org, project, integration, connection, f"g{n}")
    now = datetime.now(UTC)
    payload = CredentialExpired(organisation_id=org, credential_id=credential, version=2,
                                expires_at=now, occurred_at=now, type=CredentialType.STRING,
                                name="k")  # fmt: skip
    event = new_event("credential.expired", source="credential-vault", orgid=org, data=payload)
    async with app.client.deps.pool.acquire() as conn, conn.transaction():
        await consumers.on_credentials_expired(app.client.deps, conn, [event])
        # read inside the change's transaction: the relay cannot have sent them yet
        topics = [
            row["topic"]
            for row in await conn.fetch(
                "SELECT topic FROM outbox WHERE topic = ANY($2::text[])"
                " AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'organisationId' = $1"
                " ORDER BY id",
                org,
                ["installation.health_changed", "connection.updated"],
            )
        ]
    assert topics == ["installation.health_changed"] * GROUPS + ["connection.updated"] * GROUPS
