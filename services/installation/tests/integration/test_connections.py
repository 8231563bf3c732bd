"""Connections against the real vault: each auth variant as its credential type,
two or no variants refused, unknown providers and foreign ids 404, delete removes
the credential, and a vault write whose insert then fails is compensated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from plugboard_servicekit.testing import Canary, ServiceProcesses

from .wired import Wired, wired_app

pytestmark = pytest.mark.integration
ALL = ("connections:read", "connections:write", "installations:read", "installations:write")
BASE = {"provider": "hubspot", "groupRef": "acme", "consumerRef": "ada"}


@pytest.fixture(scope="module")
async def wired(
    postgres_dsn: str, service_processes: ServiceProcesses, jwt_keys: tuple[str, str]
) -> AsyncIterator[Wired]:
    async for app in wired_app(postgres_dsn, service_processes, jwt_keys):
        yield app


async def _create(app: Wired, org: str, project: dict[str, Any], **body: Any) -> Any:
    return await app.client.post(f"/v1/projects/{project['id']}/connections",
                                 json={**BASE, **body}, headers=app.headers(org))  # fmt: skip


@pytest.mark.parametrize(
    ("variant", "value", "kind"),
    [
        ("apiKey", "k-canary-91f2", "string"),
        ("basicAuth", {"username": "u", "password": "p-canary-91f2"}, "basic-auth"),
        ("customAuth", {"token": "t-canary-91f2"}, "custom-function"),
    ],
)
async def test_variant_stored_as_its_type(
    wired: Wired, org: str, variant: str, value: Any, kind: str
) -> None:
    project = await wired.project(org)
    made = await _create(wired, org, project, **{variant: value})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["status"] == "created"
    assert body["group"]["groupRef"] == "acme"
    credential = await wired.vault(org, "GET", f"/v1/credentials/{body['credentialId']}")
    assert credential.json()["type"] == kind
    listed = await wired.client.get(f"/v1/projects/{project['id']}/connections?provider=hubspot",
                                    headers=wired.headers(org))  # fmt: skip
    assert [c["id"] for c in listed.json()["connections"]] == [body["id"]]
    Canary("canary-91f2").assert_absent(bodies=[made, listed])
    gone = await wired.client.delete(f"/v1/projects/{project['id']}/connections/{body['id']}",
                                     headers=wired.headers(org))  # fmt: skip
    assert gone.status_code == 204
    after = await wired.vault(org, "GET", f"/v1/credentials/{body['credentialId']}")
    assert after.status_code == 404


async def test_two_or_no_variants_are_422_and_store_nothing(wired: Wired, org: str) -> None:
    project = await wired.project(org)
    two = await _create(wired, org, project, apiKey="a", basicAuth={"username": "u",
                                                                    "password": "p"})  # fmt: skip
    none = await _create(wired, org, project)
    assert (two.status_code, none.status_code) == (422, 422)
    stored = await wired.vault(org, "GET", "/v1/credentials")
    assert stored.json()["items"] == []


async def test_unknown_provider_and_foreign_project_are_404(wired: Wired, org: str) -> None:
    project = await wired.project(org)
    unknown = await _create(wired, org, project, provider="no-such-provider", apiKey="k")
    assert unknown.status_code == 404
    foreign = await wired.client.post(f"/v1/projects/{project['id']}/connections",
                                      json={**BASE, "apiKey": "k"},
                                      headers=wired.headers("org-other"))  # fmt: skip
    assert foreign.status_code == 404
    stored = await wired.vault(org, "GET", "/v1/credentials")
    assert stored.json()["items"] == []


async def test_failed_insert_deletes_the_vault_credential(
    wired: Wired, org: str, postgres_dsn: str
) -> None:
    """The connection insert fails after the vault write (a trigger refuses the row):
    the credential is deleted, no connection or event is left."""
    project = await wired.project(org)
    schema = wired.client.schema
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f"""
            CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON {schema}.connections
            FOR EACH ROW WHEN (NEW.provider_workspace_ref = 'refuse')
            EXECUTE FUNCTION {schema}.refuse();
        """)  # fmt: skip
        staged = f"SELECT count(*) FROM {schema}.outbox WHERE topic = 'connection.created'"
        before = await admin.fetchval(staged)
        failed = await _create(wired, org, project, apiKey="k-1", providerWorkspaceRef="refuse")
        assert failed.status_code == 500
        stored = await wired.vault(org, "GET", "/v1/credentials")
        assert stored.json()["items"] == []
        rows = await admin.fetchval(
            f"SELECT count(*) FROM {schema}.connections WHERE provider_workspace_ref = 'refuse'"
        )
        assert rows == 0
        assert await admin.fetchval(staged) <= before  # no connection.created was staged
        ok = await _create(wired, org, project, apiKey="k-2")
        assert ok.status_code == 201
        assert len((await wired.vault(org, "GET", "/v1/credentials")).json()["items"]) == 1
        await admin.execute(f"DROP TRIGGER refuse ON {schema}.connections")
    finally:
        await admin.close()


EXAMPLES = 4
_BROKER_REFUSES = "oauth-broker refused the installation service's call."


async def test_fuzzed_requests_never_get_a_server_error(wired: Wired, org: str) -> None:
    """Schemathesis cases (valid and invalid) for every operation of the OpenAPI
    document: only 2xx or 4xx problems. The one 503 allowed is the broker refusing
    installation's identity while its spec does not trust installation yet."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.core import NotSet
    from schemathesis.generation import GenerationMode

    project = await wired.project(org, "fuzz")
    document = (await wired.client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    auth = wired.headers(org, [*ALL, "projects:read", "projects:write"])
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            for _ in range(EXAMPLES):
                try:
                    case = strategy.example()
                except Unsatisfiable:  # e.g. no invalid input exists for a bare GET
                    break
                path = case.formatted_path.replace("{project_id}", project["id"])
                if "project_id" in (case.path_parameters or {}) and mode is GenerationMode.POSITIVE:
                    path = operation.path.format(
                        **{**case.path_parameters, "project_id": project["id"]}
                    )
                response = await wired.client.request(
                    case.method,
                    path,
                    params=case.query,
                    headers={**auth},
                    **_body(case.body, NotSet),
                )
                statuses.append(response.status_code)
                if response.status_code == 503 and _BROKER_REFUSES in response.text:
                    continue
                assert response.status_code < 500, (case.method, path, response.text)
                if response.status_code >= 400:
                    assert response.headers["content-type"].startswith("application/problem+json")
    assert len(statuses) > 100
    assert any(200 <= s < 300 for s in statuses)


def _body(body: Any, not_set: type) -> dict[str, Any]:
    """httpx arguments for a generated body: none, raw bytes, or JSON."""
    if isinstance(body, not_set):
        return {}
    if isinstance(body, bytes | str):
        return {"content": body}
    return {"json": body}
