"""Integrations, revisions and installations through HTTP; the OAuth-session consumer."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from installation import consumers
from plugboard_contracts.enums import GrantType
from plugboard_contracts.payloads import OAuthSessionCompleted
from plugboard_contracts.topics import new_event
from plugboard_servicekit.errors import Invalid, NotFound

from . import helpers
from .conftest import App

pytestmark = pytest.mark.integration


async def _installed(app: App, org: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    project = await app.project(org)
    integration = await helpers.integration(app, org, project)
    connection = await helpers.connection(app, org, project, uuid4(), "acme")
    installed = await helpers.install(app, org, project, integration, connection, "acme")
    return project, integration, installed


async def test_create_get_list_update_delete(app: App, org: str) -> None:
    project, integration, installed = await _installed(app, org)
    assert installed["healthStatus"] == "healthy"
    assert installed["createdBy"] == "builder:builder-1"
    url = f"/v1/projects/{project['id']}/integrations/{integration}/installations"
    got = await app.client.get(f"{url}/{installed['id']}", headers=app.headers(org))
    assert got.json()["config"]["content"] == {"read": {"objects": {"contacts": {}}}}
    listed = await app.client.get(f"{url}?groupRef=acme", headers=app.headers(org))
    assert [i["id"] for i in listed.json()["installations"]] == [installed["id"]]
    other = await app.client.get(f"{url}?groupRef=nobody", headers=app.headers(org))
    assert other.json()["installations"] == []
    patch = {"content": {"read": {"objects": {"contacts": {"schedule": "daily"}}}}}
    updated = await app.client.patch(
        f"{url}/{installed['id']}", json=patch, headers=app.headers(org, sub="builder-2")
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["config"]["id"] != installed["config"]["id"]
    assert body["config"]["createdBy"] == "builder:builder-2"
    assert body["config"]["revisionId"] == installed["config"]["revisionId"]
    wrong = await app.client.patch(
        f"{url}/{installed['id']}",
        headers=app.headers(org),
        json={"content": {"write": {"objects": {"deals": {}}}}},
    )
    assert wrong.status_code == 422
    twice = await helpers_install_again(app, org, project, integration, installed)
    assert twice.status_code == 409
    gone = await app.client.delete(f"{url}/{installed['id']}", headers=app.headers(org))
    assert gone.status_code == 204
    missing = await app.client.get(f"{url}/{installed['id']}", headers=app.headers(org))
    assert missing.status_code == 404


async def helpers_install_again(
    app: App, org: str, project: dict[str, Any], integration: str, installed: dict[str, Any]
) -> Any:
    url = f"/v1/projects/{project['id']}/integrations/{integration}/installations"
    body = {"groupRef": "acme", "connectionId": installed["connectionId"]}
    return await app.client.post(url, json=body, headers=app.headers(org))


async def test_foreign_and_unknown_ids_are_404(app: App, org: str) -> None:
    project, integration, installed = await _installed(app, org)
    url = f"/v1/projects/{project['id']}/integrations/{integration}/installations"
    for path in (f"{url}/{installed['id']}", url, f"{url}/{uuid4()}", f"{url}/x"):
        foreign = await app.client.get(path, headers=app.headers("org-other"))
        assert foreign.status_code == 404, path
    unknown_group = await app.client.post(
        url,
        headers=app.headers(org),
        json={"groupRef": "not-here", "connectionId": installed["connectionId"]},
    )
    assert unknown_group.status_code == 404
    other_project = await app.project(org, "other")
    elsewhere = await helpers.integration(app, org, other_project)
    cross = await app.client.post(
        f"/v1/projects/{other_project['id']}/integrations/{elsewhere}/installations",
        headers=app.headers(org),
        json={"groupRef": "acme", "connectionId": installed["connectionId"]},
    )
    assert cross.status_code == 404


async def test_revisions_are_validated(app: App, org: str) -> None:
    project = await app.project(org)
    base = f"/v1/projects/{project['id']}/integrations"
    made = await app.client.post(
        base, json={"name": "x", "connectorId": str(uuid4())}, headers=app.headers(org)
    )
    url = f"{base}/{made.json()['id']}/revisions"
    for bad in (
        {"specVersion": "9"},
        {"specVersion": "1.0.0"},
        {"specVersion": "1.0.0", "read": {"objects": []}},
        {"specVersion": "1.0.0", "read": {"objects": [{"objectName": "a"}, {"objectName": "a"}]}},
    ):
        response = await app.client.post(url, json=bad, headers=app.headers(org))
        assert response.status_code == 422, bad
    both = await app.client.post(
        base,
        headers=app.headers(org),
        json={"name": "y", "connectorId": str(uuid4()), "provider": "p"},
    )
    assert both.status_code == 422


async def _session(app: App, org: str, project: UUID | None, **extra: Any) -> None:
    payload = OAuthSessionCompleted(
        organisation_id=org,
        session_id=extra.pop("session_id", uuid4()),
        provider="crm",
        grant_type=GrantType.AUTHORIZATION_CODE_PKCE,
        project_id=project,
        credential_id=uuid4(),
        **{"group_ref": "acme", "consumer_ref": "ada", **extra},
    )
    event = new_event("oauth.session.completed", source="oauth-broker", orgid=org, data=payload)
    async with app.client.deps.pool.acquire() as conn, conn.transaction():
        await consumers.on_session_completed(app.client.deps, conn, event)


async def test_completed_session_makes_its_connection_once(app: App, org: str) -> None:
    project = await app.project(org)
    session = uuid4()
    await _session(app, org, UUID(project["id"]), session_id=session)
    await _session(app, org, UUID(project["id"]), session_id=session)
    listed = await app.client.get(
        f"/v1/projects/{project['id']}/connections", headers=app.headers(org)
    )
    [connection] = listed.json()["connections"]
    assert connection["status"] == "working"
    with pytest.raises(Invalid):
        await _session(app, org, None)
    with pytest.raises(NotFound):
        await _session(app, org, uuid4())
    with pytest.raises(Invalid):
        await _session(app, org, UUID(project["id"]), group_ref="x" * 500)
