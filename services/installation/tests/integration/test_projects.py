"""Projects, builders, API keys and the token exchange through HTTP."""

from __future__ import annotations

import jwt
import pytest
from plugboard_servicekit.auth import TokenVerifier

from .conftest import App

pytestmark = pytest.mark.integration


async def test_project_create_list_get_and_builder_info(app: App, org: str) -> None:
    project = await app.project(org)
    assert set(project) == {"id", "name", "appName", "orgId", "createTime", "updateTime"}
    assert project["orgId"] == org
    listed = await app.client.get("/v1/projects", headers=app.headers(org))
    assert [p["id"] for p in listed.json()["projects"]] == [project["id"]]
    again = await app.client.post(
        "/v1/projects", json={"name": "proj", "appName": "x"}, headers=app.headers(org)
    )
    assert again.status_code == 409
    me = (await app.client.get("/v1/builders/me", headers=app.headers(org))).json()
    assert set(me) == {"builder", "projectRoles", "orgRole"}
    role = me["projectRoles"][project["id"]]
    assert role["role"] == "admin"
    assert role["principalType"] == "builder"
    assert role["principalId"] == "builder-1"
    assert role["project"]["id"] == project["id"]
    assert me["orgRole"]["org"]["id"] == org
    assert me["orgRole"]["role"] == "admin"


async def test_other_org_sees_404(app: App, org: str) -> None:
    project = await app.project(org)
    other = await app.client.get(f"/v1/projects/{project['id']}", headers=app.headers("org-x"))
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    bad = await app.client.get("/v1/projects/not-a-uuid", headers=app.headers(org))
    assert bad.status_code == 404


async def test_api_key_token_exchange_and_revocation(
    app: App, org: str, jwt_keys: tuple[str, str]
) -> None:
    project = await app.project(org)
    base = f"/v1/projects/{project['id']}"
    made = await app.client.post(
        f"{base}/api-keys",
        json={"label": "ci", "scopes": ["connections:read", "projects:read"]},
        headers=app.headers(org),
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    listed = await app.client.get(f"{base}/api-keys", headers=app.headers(org))
    assert key not in listed.text
    assert listed.json()["apiKeys"][0]["active"] is True

    issued = await app.client.post("/v1/auth/token", json={"apiKey": key})
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["tokenType"] == "Bearer"
    assert 0 < body["expiresIn"] <= 3600
    caller = TokenVerifier(jwt_keys[1]).verify(body["accessToken"])
    assert caller.org == org
    assert caller.scopes == {"connections:read", "projects:read"}
    bearer = {"Authorization": f"Bearer {body['accessToken']}"}
    assert (await app.client.get(base, headers=bearer)).status_code == 200
    forbidden = await app.client.get(f"{base}/api-keys", headers=bearer)
    assert forbidden.status_code == 200  # projects:read suffices to list (keys never shown)
    write = await app.client.post(f"{base}/groups", json={"groupRef": "g", "groupName": "G"},
                                  headers=bearer)  # fmt: skip
    assert write.status_code == 403

    key_id = made.json()["id"]
    revoked = await app.client.delete(f"{base}/api-keys/{key_id}", headers=app.headers(org))
    assert revoked.status_code == 204
    assert (await app.client.get(base, headers=bearer)).status_code == 401
    again = await app.client.post("/v1/auth/token", json={"apiKey": key})
    assert again.status_code == 401
    assert key not in again.text


async def test_api_key_cannot_exceed_the_callers_scopes(app: App, org: str) -> None:
    project = await app.project(org)
    made = await app.client.post(
        f"/v1/projects/{project['id']}/api-keys",
        json={"label": "x", "scopes": ["installations:write", "credentials:reveal"]},
        headers=app.headers(org, ["projects:write", "projects:read"]),
    )
    assert made.status_code == 422
    assert {e["message"] for e in made.json()["errors"]} >= {
        "unknown scope: credentials:reveal",
        "the caller lacks: installations:write",
    }


async def test_api_key_reaches_only_its_project(app: App, org: str) -> None:
    mine, other = await app.project(org, "a"), await app.project(org, "b")
    made = await app.client.post(
        f"/v1/projects/{mine['id']}/api-keys",
        json={"label": "x", "scopes": ["projects:read"]},
        headers=app.headers(org),
    )
    token = (await app.client.post("/v1/auth/token", json={"apiKey": made.json()["key"]})).json()
    bearer = {"Authorization": f"Bearer {token['accessToken']}"}
    assert (await app.client.get(f"/v1/projects/{other['id']}", headers=bearer)).status_code == 404
    listed = await app.client.get("/v1/projects", headers=bearer)
    assert [p["id"] for p in listed.json()["projects"]] == [mine["id"]]


async def test_jwks_publishes_the_verifying_key(app: App, jwt_keys: tuple[str, str]) -> None:
    document = (await app.client.get("/.well-known/jwks.json")).json()
    [key] = document["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert "d" not in key
    public = jwt.PyJWK(key).key
    token = jwt.encode({"a": 1}, app.private_key, algorithm="EdDSA")
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"a": 1}


async def test_unknown_api_key_is_401(app: App) -> None:
    response = await app.client.post("/v1/auth/token", json={"apiKey": "pbk_nope"})
    assert response.status_code == 401
