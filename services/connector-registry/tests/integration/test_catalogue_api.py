"""The provider catalogue over HTTP: browse, extend, connectors from entries, both imports,
and connectors that stay while connections use them."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path
from typing import Any

import pytest
from plugboard_contracts.payloads import ConnectionCreated, ConnectionDeleted
from plugboard_contracts.topics import new_event
from plugboard_servicekit.kafka import create_producer
from plugboard_servicekit.testing import AppClient, TopicReader, wait_until

pytestmark = pytest.mark.integration
Registry = AppClient[Any, Any]
BILLION_LAUGHS = (Path(__file__).parents[1] / "data" / "billion-laughs.yaml").read_bytes()
DATA = Path(__file__).parents[1] / "data"


def _data(name: str) -> bytes:
    return gzip.decompress((DATA / f"{name}.gz").read_bytes())


async def test_browse_the_catalogue(registry: Registry, auth: dict[str, str]) -> None:
    names: list[str] = []
    token = ""
    while True:
        page = (await registry.get(f"/v1/providers?pageSize=100{token}", headers=auth)).json()
        names += [item["name"] for item in page["items"]]
        if page["nextPageToken"] is None:
            break
        token = f"&pageToken={page['nextPageToken']}"
    assert len(names) == 238
    assert names == sorted(names)
    found = (await registry.get("/v1/providers?authType=oauth2&q=SALES", headers=auth)).json()
    assert "salesforce" in [item["name"] for item in found["items"]]
    assert all("oauth2" in {s["schemeType"] for s in i["authSchemes"]} for i in found["items"])
    salesforce = (await registry.get("/v1/providers/salesforce", headers=auth)).json()
    assert salesforce["authSchemes"][0]["tokenResponseMetadata"] == ["instance_url", "id"]
    assert (await registry.get("/v1/providers/nope", headers=auth)).status_code == 404


async def test_connector_from_provider(registry: Registry, auth: dict[str, str]) -> None:
    reader = await TopicReader(registry.settings.kafka_bootstrap_servers,
                               "auth_scheme_config.upserted").start()  # fmt: skip
    body: dict[str, Any] = {"provider": "zendeskSupport", "name": "zendesk"}
    missing = await registry.post("/v1/connectors:from-provider", json=body, headers=auth)
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["body.inputs.workspace"]
    unsafe = {**body, "inputs": {"workspace": "evil.com/x"}}
    assert (await registry.post("/v1/connectors:from-provider", json=unsafe,
                                headers=auth)).status_code == 422  # fmt: skip
    unknown = await registry.post("/v1/connectors:from-provider", headers=auth,
                                  json={"provider": "nope", "name": "n"})  # fmt: skip
    assert unknown.status_code == 422
    made = await registry.post("/v1/connectors:from-provider", headers=auth,
                               json={**body, "inputs": {"workspace": "acme"}})  # fmt: skip
    assert made.status_code == 201, made.text
    connector = made.json()
    assert connector["baseUrl"] == "https://acme.zendesk.com"
    assert connector["provider"] == "zendeskSupport"
    (config,) = connector["authSchemeConfigs"]
    assert config["tokenUrl"] == "https://acme.zendesk.com/oauth/tokens"
    (event,) = await reader.events(where=lambda e: e.subject == connector["id"])
    await reader.stop()
    oauth2 = event.data["oauth2"]  # what the OAuth broker keeps: concrete URLs, no templates
    assert oauth2["authorizeUrl"] == "https://acme.zendesk.com/oauth/authorizations/new"
    assert "{{" not in str(oauth2)
    wanted = {"provider": "bigquery", "name": "bq", "inputs": {"projectId": "p1", "dataset": "d1"}}
    bigquery = await registry.post("/v1/connectors:from-provider", headers=auth, json=wanted)
    assert bigquery.json()["datasetId"] == "p1.d1"
    assert bigquery.json()["protocol"] == "bigquery"


async def test_orgs_extend_the_catalogue(registry: Registry, auth: dict[str, str]) -> None:
    entry = {"name": "acme", "displayName": "Acme", "baseUrl": "https://{{.tenant}}.acme.test",
             "inputs": [{"name": "tenant"}],
             "authSchemes": [{"id": "key", "schemeType": "api-key", "name": "X-Key",
                              "in": "header"}]}  # fmt: skip
    assert (await registry.post("/v1/providers", json=entry, headers=auth)).status_code == 201
    assert (await registry.post("/v1/providers", json=entry, headers=auth)).status_code == 409
    broken = {**entry, "name": "broken", "inputs": []}
    refused = await registry.post("/v1/providers", json=broken, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.baseUrl"
    wrong = {**entry, "name": "wrong", "authSchemes": [{"schemeType": "magic"}]}
    assert (await registry.post("/v1/providers", json=wrong, headers=auth)).status_code == 422
    assert (await registry.get("/v1/providers/acme", headers=auth)).json()["source"] == {
        "origin": "org"
    }


async def test_nango_import(registry: Registry, auth: dict[str, str]) -> None:
    document = _data("nango-providers.yaml")
    url = "/v1/providers:import?format=nango"
    first = await registry.post(
        url, content=document, headers=auth | {"Content-Type": "application/yaml"}
    )
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["imported"] > 800
    assert result["updated"] == 0
    assert any("OAUTH1" in s["reason"] for s in result["skipped"])
    again = (await registry.post(url, content=document, headers=auth)).json()
    assert again["updated"] == result["imported"]
    zendesk = (await registry.get("/v1/providers/zendesk", headers=auth)).json()
    assert zendesk["source"]["origin"] == "nango"
    made = await registry.post("/v1/connectors:from-provider", headers=auth, json={
        "provider": "salesforce", "name": "sf"})  # fmt: skip
    assert made.status_code == 201, made.text  # hostname defaults to login.salesforce.com
    token_url = made.json()["authSchemeConfigs"][0]["tokenUrl"]
    assert token_url == "https://login.salesforce.com/services/oauth2/token"
    bomb = await registry.post(url, content=BILLION_LAUGHS, headers=auth)
    assert bomb.status_code == 422
    assert (await registry.post(url, content=b"a: [1", headers=auth)).status_code == 422
    assert (await registry.post("/v1/providers:import?format=x", content=b"{}",
                                headers=auth)).status_code == 422  # fmt: skip


async def test_openapi_import(registry: Registry, auth: dict[str, str]) -> None:
    url = "/v1/connectors:import-openapi"
    github = await registry.post(f"{url}?name=github", content=_data("github-api.github.com.json"),
                                 headers=auth)  # fmt: skip
    assert github.status_code == 201, github.text
    assert github.json()["connector"]["baseUrl"] == "https://api.github.com"
    assert github.json()["paths"] > 500
    okta = (await registry.post(url, content=_data("okta-management.yaml"), headers=auth)).json()
    connector = okta["connector"]
    assert connector["name"] == "Okta Admin Management API"
    assert connector["connectionVariables"] == [
        {"name": "yourOktaDomain", "value": "subdomain.okta.com"}
    ]
    assert {c["schemeType"] for c in connector["authSchemeConfigs"]} == {"api-key", "oauth2"}
    assert (await registry.post(url, content=b"openapi: [", headers=auth)).status_code == 422
    too_big = await registry.post(url, content=b" " * (25 * 1024 * 1024 + 1), headers=auth)
    assert too_big.status_code == 413


async def test_delete_is_refused_while_connections_use_the_connector(
    registry: Registry, auth: dict[str, str], org: str
) -> None:
    connector = (await registry.post("/v1/connectors", json={"name": "used"}, headers=auth)).json()
    path = f"/v1/connectors/{connector['id']}"
    producer = await create_producer(registry.settings.kafka_bootstrap_servers)
    used, early = uuid.uuid4(), uuid.uuid4()
    sent: list[uuid.UUID] = []
    try:
        state = {"organisation_id": org, "name": "conn", "connector_id": connector["id"]}
        for topic, payload in (
            ("connection.created", ConnectionCreated(connection_id=used, version=1, **state)),
            ("connection.deleted", ConnectionDeleted(connection_id=early, version=2, **state)),
            ("connection.created", ConnectionCreated(connection_id=early, version=1, **state)),
        ):
            event = new_event(topic, source="installation", orgid=org, data=payload)
            sent.append(uuid.UUID(str(event.id)))
            await producer.send_and_wait(topic, event.model_dump_json(by_alias=True).encode(),
                                         key=event.subject.encode())  # fmt: skip

        await wait_until(lambda: _seen(registry, sent), 30, message="events not seen")
        assert await _usages(registry, connector["id"], 1)
        response = await registry.delete(path, headers=auth)
        assert response.status_code == 409
        assert response.json()["connections"] == 1
        gone = ConnectionDeleted(connection_id=used, version=2, **state)
        event = new_event("connection.deleted", source="installation", orgid=org, data=gone)
        await producer.send_and_wait("connection.deleted", event.model_dump_json().encode(),
                                     key=event.subject.encode())  # fmt: skip

        await wait_until(lambda: _usages(registry, connector["id"], 0), 30, message="still used")
        assert (await registry.delete(path, headers=auth)).status_code == 204
    finally:
        await producer.stop()


async def test_force_deletes_a_connector_in_use(
    registry: Registry, auth: dict[str, str], org: str
) -> None:
    connector = (
        await registry.post("/v1/connectors", json={"name": "forced"}, headers=auth)
    ).json()
    producer = await create_producer(registry.settings.kafka_bootstrap_servers)
    try:
        created = ConnectionCreated(organisation_id=org, name="c", connector_id=connector["id"],
                                    connection_id=uuid.uuid4(), version=1)  # fmt: skip
        event = new_event("connection.created", source="installation", orgid=org, data=created)
        await producer.send_and_wait("connection.created", event.model_dump_json().encode(),
                                     key=event.subject.encode())  # fmt: skip
    finally:
        await producer.stop()
    path = f"/v1/connectors/{connector['id']}"
    await wait_until(lambda: _usages(registry, connector["id"], 1), 30, message="no usage")
    assert (await registry.delete(path, headers=auth)).status_code == 409
    assert (await registry.delete(f"{path}?force=true", headers=auth)).status_code == 204


async def _usages(registry: Registry, connector_id: str, expected: int) -> bool:
    query = "SELECT count(*) FROM connector_usages WHERE connector_id = $1"
    return await registry.deps.pool.fetchval(query, uuid.UUID(connector_id)) == expected


async def _seen(registry: Registry, event_ids: list[uuid.UUID]) -> bool:
    """Every one of these events was consumed (applied, or dropped as older): the
    two topics are read independently, so their order of arrival is not the order sent."""
    query = "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])"
    return await registry.deps.pool.fetchval(query, event_ids) == len(event_ids)
