"""Client secrets land in the real vault and nowhere in the registry (tables, logs,
events, responses); events carry the vault credential id and the aggregate version."""

from __future__ import annotations

import io
import sys
from typing import Any

import httpx
import pytest
from connector_registry.app import SPEC
from connector_registry.settings import ConnectorRegistrySettings
from plugboard_servicekit.testing import Canary, ServiceProcesses, TopicReader, service_client

pytestmark = pytest.mark.integration
TOPICS = ("auth_scheme_config.upserted", "provider_app.created", "connector.created")


async def _revealed(vault: ServiceProcesses, keys: tuple[str, str], org: str, cid: str) -> Any:
    auth = {"Authorization": f"Bearer {vault.token(org, ['credentials:reveal'])}"}
    async with httpx.AsyncClient(base_url=vault.url("credential-vault")) as client:
        response = await client.post(f"/v1/credentials/{cid}:reveal", headers=auth)
        return response.status_code, response.json()


async def test_client_secrets_go_to_the_vault_only(
    registry_settings: ConnectorRegistrySettings,
    vault_process: ServiceProcesses,
    jwt_keys: tuple[str, str],
    postgres_dsn: str,
    org: str,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second, third = (f"canary-{n}-Zq8wX2pL9vR4tY6u" for n in "abc")
    logs = io.StringIO()
    monkeypatch.setattr(sys, "stdout", logs)
    bootstrap = registry_settings.kafka_bootstrap_servers
    readers = {topic: await TopicReader(bootstrap, topic).start() for topic in TOPICS}
    bodies: list[httpx.Response] = []
    async with service_client(SPEC, registry_settings, name=SPEC.name) as registry:
        connector = (await registry.post("/v1/connectors", json={"name": "c"}, headers=auth)).json()
        path = f"/v1/connectors/{connector['id']}/auth-scheme-configs/oauth"
        config = {"schemeType": "oauth2", "tokenUrl": "https://example.com/token",
                  "authorizeUrl": "https://example.com/authorize",
                  "grant": {"clientId": "client-1", "clientSecret": first}}  # fmt: skip
        created = await registry.put(path, json=config, headers=auth)
        bodies.append(created)
        credential_id = created.json()["grant"]["credentialId"]
        status, revealed = await _revealed(vault_process, jwt_keys, org, credential_id)
        assert status == 200
        assert revealed["data"]["clientSecret"] == first
        merged = {**config, "grant": {"credentialId": credential_id, "clientSecret": second}}
        bodies.append(await registry.put(path, json=merged, headers=auth))
        _, revealed = await _revealed(vault_process, jwt_keys, org, credential_id)
        assert revealed["data"]["clientId"] == "client-1"
        assert revealed["data"]["clientSecret"] == second
        foreign = {**config, "grant": {"credentialId": connector["id"], "clientSecret": second}}
        refused = await registry.put(path, json=foreign, headers=auth)
        assert refused.status_code == 400
        bodies.append(refused)
        app = await registry.post(
            "/v1/provider-apps", headers=auth,
            json={"provider": "salesforce", "clientId": "sf", "clientSecret": third},
        )  # fmt: skip
        assert app.status_code == 201, app.text
        bodies.append(app)
        app_secret = app.json()["clientSecretCredentialId"]
        _, revealed = await _revealed(vault_process, jwt_keys, org, app_secret)
        assert revealed["data"]["clientSecret"] == third
        events = await _events(readers, connector["id"], app.json()["id"])
        upserted = events[0].data
        assert upserted["oauth2"]["clientSecretCredentialId"] == credential_id
        assert upserted["version"] >= 1
        app_event = events[1].data
        assert app_event["clientSecretCredentialId"] == app_secret
        assert app_event["oauth2"]["tokenUrl"].endswith("/services/oauth2/token")
        assert (await registry.delete(path, headers=auth)).status_code == 204
        status, _ = await _revealed(vault_process, jwt_keys, org, credential_id)
        assert status == 404  # deleted with its config
        schema = registry.schema
    for canary in (first, second, third):
        Canary(canary).assert_absent(
            logs=logs.getvalue(), events=events, bodies=bodies, pg_dump_of=(postgres_dsn, schema)
        )


async def _events(readers: dict[str, TopicReader], connector_id: str, app_id: str) -> list[Any]:
    try:
        upserted = await readers["auth_scheme_config.upserted"].events(
            count=2, where=lambda e: e.subject == connector_id
        )
        apps = await readers["provider_app.created"].events(where=lambda e: e.subject == app_id)
        created = await readers["connector.created"].events(
            where=lambda e: e.subject == connector_id
        )
        return [upserted[-1], apps[0], *upserted, *created]
    finally:
        for reader in readers.values():
            await reader.stop()
