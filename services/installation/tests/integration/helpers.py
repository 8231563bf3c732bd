"""Rows a health test needs, made through the service's own code paths: the project,
integration, revision and installations through HTTP, the connections with
``service_connections.record`` (the step after the vault write, with an id for a
credential the test names)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from installation.domain.requests import Parties
from installation.service_connections import Secured, record

from .conftest import App

REVISION = {"specVersion": "1.0.0", "read": {"objects": [{"objectName": "contacts"}]}}


async def integration(app: App, org: str, project: dict[str, Any]) -> str:
    base = f"/v1/projects/{project['id']}/integrations"
    made = await app.client.post(
        base, json={"name": "sync", "connectorId": str(uuid4())}, headers=app.headers(org)
    )
    assert made.status_code == 201, made.text
    iid = made.json()["id"]
    revision = await app.client.post(f"{base}/{iid}/revisions", json=REVISION,
                                     headers=app.headers(org))  # fmt: skip
    assert revision.status_code == 201, revision.text
    return iid


async def connection(app: App, org: str, project: dict[str, Any], credential: UUID,
                     group: str) -> UUID:  # fmt: skip
    parties = Parties(provider="hubspot", group_ref=group, consumer_ref="u-1")
    async with app.client.deps.pool.acquire() as conn, conn.transaction():
        made = await record(conn, org, UUID(project["id"]), parties,
                            Secured("apiKey", credential), {})  # fmt: skip
    assert made is not None
    return made


async def install(app: App, org: str, project: dict[str, Any], integration_id: str,
                  connection_id: UUID, group: str) -> dict[str, Any]:  # fmt: skip
    url = f"/v1/projects/{project['id']}/integrations/{integration_id}/installations"
    body = {"groupRef": group, "connectionId": str(connection_id),
            "config": {"content": {"read": {"objects": {"contacts": {}}}}}}  # fmt: skip
    made = await app.client.post(url, json=body, headers=app.headers(org))
    assert made.status_code == 201, made.text
    return made.json()
