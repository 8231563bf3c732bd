"""Connectors, versions and auth scheme configs over HTTP on the real database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from connector_registry.domain.schemes import SchemeType
from plugboard_servicekit.testing import AppClient

pytestmark = pytest.mark.integration
Registry = AppClient[Any, Any]
EVERY_SCHEME = json.loads((Path(__file__).parents[1] / "data" / "every-scheme.json").read_text())


async def _create(registry: Registry, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": "stripe", "baseUrl": "https://api.stripe.com", **fields}
    response = await registry.post("/v1/connectors", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def test_crud_filters_and_pages(registry: Registry, auth: dict[str, str]) -> None:
    created = await _create(registry, auth, tags=["payments"])
    assert created["protocol"] == "http"
    assert created["organisationId"]
    for index in range(3):
        await _create(registry, auth, name=f"c{index}")
    conflict = await registry.post("/v1/connectors", json={"name": "stripe"}, headers=auth)
    assert conflict.status_code == 409
    page = (await registry.get("/v1/connectors?pageSize=2", headers=auth)).json()
    assert len(page["items"]) == 2
    rest = await registry.get(f"/v1/connectors?pageToken={page['nextPageToken']}", headers=auth)
    assert len(rest.json()["items"]) == 2
    assert rest.json()["nextPageToken"] is None
    tagged = (await registry.get("/v1/connectors?tag=payments", headers=auth)).json()
    assert [c["name"] for c in tagged["items"]] == ["stripe"]
    patched = await registry.patch(
        f"/v1/connectors/{created['id']}", json={"documentationUrl": "https://docs.stripe.com"},
        headers=auth,
    )  # fmt: skip
    assert patched.json()["documentationUrl"] == "https://docs.stripe.com"
    assert patched.json()["version"] == 2
    path = f"/v1/connectors/{created['id']}"
    assert (await registry.get(path, headers=auth)).json()["authSchemeConfigs"] == []
    config = {"schemeType": "basic-auth"}
    put = await registry.put(f"{path}/auth-scheme-configs/b", json=config, headers=auth)
    assert put.status_code == 201
    served = (await registry.get(path, headers=auth)).json()  # the read cache moved on
    assert [c["id"] for c in served["authSchemeConfigs"]] == ["b"]
    assert served["updatedAt"] > patched.json()["updatedAt"]
    assert (await registry.delete(path, headers=auth)).status_code == 204
    assert (await registry.get(path, headers=auth)).status_code == 404


async def test_other_orgs_and_bad_ids_answer_404(
    registry: Registry, auth: dict[str, str], make_headers: Callable[..., Any]
) -> None:
    created = await _create(registry, auth)
    other = make_headers("someone-else")
    for path in (f"/v1/connectors/{created['id']}", "/v1/connectors/not-a-uuid"):
        assert (await registry.get(path, headers=other)).status_code == 404
    path = f"/v1/connectors/{created['id']}"
    assert (await registry.delete(path, headers=other)).status_code == 404
    limited = make_headers("x", "connectors:read")
    refused = await registry.post("/v1/connectors", json={"name": "n"}, headers=limited)
    assert refused.status_code == 403


async def test_versions_draft_publish_unpublish(registry: Registry, auth: dict[str, str]) -> None:
    connector = await _create(registry, auth)
    base = f"/v1/connectors/{connector['id']}/versions"
    version = (await registry.post(base, json={"name": "v1"}, headers=auth)).json()
    assert version["publishedAt"] is None
    one = f"{base}/{version['id']}"
    edited = await registry.patch(one, json={"description": "d"}, headers=auth)
    assert edited.json()["description"] == "d"
    published = await registry.post(f"{base}/{version['id']}:publish", headers=auth)
    assert published.json()["publishedAt"] is not None
    assert published.json()["isLatest"] is True
    immutable = await registry.patch(f"{base}/{version['id']}", json={"name": "v2"}, headers=auth)
    assert immutable.status_code == 409
    assert (await registry.delete(f"{base}/{version['id']}", headers=auth)).status_code == 409
    await registry.post(f"{base}/{version['id']}:unpublish", headers=auth)
    assert (await registry.patch(f"{base}/{version['id']}", json={"name": "v2"},
                                 headers=auth)).status_code == 200  # fmt: skip
    duplicate = await registry.post(base, json={"name": "v2"}, headers=auth)
    assert duplicate.status_code == 409
    view = (await registry.get(f"/v1/connectors/{connector['id']}", headers=auth)).json()
    assert [v["name"] for v in view["versions"]] == ["v2"]


@pytest.mark.parametrize("scheme", EVERY_SCHEME, ids=lambda d: d["schemeType"])
async def test_every_scheme_type_round_trips_over_http(
    registry: Registry, auth: dict[str, str], scheme: dict[str, Any]
) -> None:
    connector = await _create(registry, auth, name=f"c-{scheme['schemeType']}")
    path = f"/v1/connectors/{connector['id']}/auth-scheme-configs/{scheme['id']}"
    put = await registry.put(path, json=scheme, headers=auth)
    assert put.status_code == 201, put.text
    got = (await registry.get(path, headers=auth)).json()
    for key, value in scheme.items():
        assert got[key] == value, key
    assert isinstance(got["validationMessages"], list)
    again = await registry.put(path, json=got, headers=auth)  # what GET shows can be PUT back
    assert again.status_code == 200, again.text
    assert (await registry.delete(path, headers=auth)).status_code == 204
    assert (await registry.get(path, headers=auth)).status_code == 404


async def test_bad_configs_are_problems_naming_the_field(
    registry: Registry, auth: dict[str, str]
) -> None:
    connector = await _create(registry, auth)
    path = f"/v1/connectors/{connector['id']}/auth-scheme-configs/x"
    for body, field in (
        ({"schemeType": "kerberos"}, "body"),
        ({"schemeType": "oauth2", "additionalTokenParams": "a=%zz"}, "additionalTokenParams"),
        ({"schemeType": "api-key", "name": "k", "in": "body"}, "in"),
    ):
        response = await registry.put(path, json=body, headers=auth)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert any(field in error["field"] for error in response.json()["errors"])
    mismatch = await registry.put(path, json={"id": "y", "schemeType": "none"}, headers=auth)
    assert mismatch.status_code == 422


async def test_oversized_bodies_get_413(registry: Registry, auth: dict[str, str]) -> None:
    body = {"name": "big", "tags": ["x" * 90] * 50, "description": "x" * 70000}
    response = await registry.post("/v1/connectors", json=body, headers=auth)
    assert response.status_code == 413
    assert SchemeType.NONE.value == "none"
