"""The broker's copy of registry settings and its refresh schedule, from real events:
applied only when newer, tombstones on delete, provider apps kept per org, credential
events schedule oauth2-token credentials only."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from broker_helpers import Broker, headers, new_org, seed_config
from broker_proxy import losing_proxy
from broker_rotating import RotatingEndpoint, rotating_settings, serve_rotating
from oauth_broker import repository as repo
from oauth_broker.app import SPEC
from oauth_broker.configs import app_key
from plugboard_contracts.enums import CredentialDeletionReason, CredentialType, GrantType
from plugboard_contracts.payloads import (
    CredentialCreated,
    CredentialDeleted,
    ProviderAppCreated,
    ProviderAppDeleted,
    ProviderAppUpdated,
)
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_contracts.topics import new_event
from plugboard_servicekit import kafka
from plugboard_servicekit.testing import (
    Canary,
    ServiceProcesses,
    TopicReader,
    service_client,
    wait_until,
)
from pydantic import BaseModel

pytestmark = pytest.mark.integration


@pytest.fixture
async def consuming(broker_settings: Any) -> AsyncIterator[Broker]:
    """A broker that consumes, under a consumer group (and name) of its own; it cannot
    sign calls to the vault under that name, which these tests do not need."""
    spec = dataclasses.replace(SPEC, background=())
    async with service_client(spec, broker_settings(), ready=False) as client:
        await wait_until(lambda: client.runtime.messaging.status == "running", 60)
        yield client


async def publish(bootstrap: str, org: str, *payloads: BaseModel) -> None:
    from plugboard_contracts.topics import CATALOGUE

    producer = await kafka.create_producer(bootstrap)
    try:
        for payload in payloads:
            topic = next(t for t, spec in CATALOGUE.items() if spec.payload is type(payload))
            event = new_event(topic, source="test", orgid=org, data=payload)
            await producer.send_and_wait(topic, event.to_json_bytes(), key=event.subject.encode())
    finally:
        await producer.stop()


def oauth(client_id: str) -> OAuth2Settings:
    return OAuth2Settings(grant_type=GrantType.AUTHORIZATION_CODE,
                          token_url="https://idp.example/token", client_id=client_id)  # fmt: skip


async def test_provider_app_events_are_version_guarded_and_per_org(
    consuming: Broker, kafka_bootstrap: str
) -> None:
    org, other = new_org(), new_org()
    app = uuid4()
    common = {"organisation_id": org, "provider_app_id": app, "provider": "hubspot"}
    await publish(
        kafka_bootstrap, org,
        ProviderAppUpdated(**common, version=3, client_id="v3", oauth2=oauth("v3")),
        ProviderAppCreated(**common, version=1, client_id="v1", oauth2=oauth("v1")),
    )  # fmt: skip

    async def stored(of: str) -> tuple[str | None, dict[str, Any]] | None:
        return (await repo.get_configs(consuming.deps.pool, of, [app_key(app)])).get(app_key(app))

    async def applied() -> bool:
        found = await stored(org)
        return found is not None and found[1]["clientId"] == "v3"

    await wait_until(applied, 30)
    assert await stored(other) is None
    await publish(kafka_bootstrap, org,
                  ProviderAppDeleted(organisation_id=org, provider_app_id=app, provider="hubspot",
                                     version=4))  # fmt: skip

    async def deleted() -> bool:
        return await stored(org) is None

    await wait_until(deleted, 30)


async def test_credential_events_schedule_only_bound_oauth_tokens(
    consuming: Broker, kafka_bootstrap: str
) -> None:
    org = new_org()
    token, key_cred, gone = uuid4(), uuid4(), uuid4()
    expires = datetime.now(UTC) + timedelta(hours=1)
    app = uuid4()
    await publish(
        kafka_bootstrap, org,
        CredentialCreated(organisation_id=org, credential_id=token,
                          type=CredentialType.OAUTH2_TOKEN, name="t", version=1,
                          access_token_expires_at=expires,
                          has_refresh_token=True, provider_app_id=app),
        CredentialCreated(organisation_id=org, credential_id=key_cred, type=CredentialType.STRING,
                          name="k", version=1),
        CredentialCreated(organisation_id=org, credential_id=gone, type=CredentialType.OAUTH2_TOKEN,
                          name="g", version=1),
        CredentialDeleted(organisation_id=org, credential_id=gone, type=CredentialType.OAUTH2_TOKEN,
                          name="g", version=2, reason=CredentialDeletionReason.DELETED),
    )  # fmt: skip

    async def scheduled() -> bool:
        row = await repo.get_token(consuming.deps.pool, org, token)
        return row is not None

    await wait_until(scheduled, 30)
    row = await repo.get_token(consuming.deps.pool, org, token)
    assert row is not None
    assert row.config_key == app_key(app)
    assert row.due_at is not None
    assert row.due_at <= expires - timedelta(minutes=5)
    assert await repo.get_token(consuming.deps.pool, org, key_cred) is None

    async def tombstoned() -> bool:
        return await repo.get_token(consuming.deps.pool, org, gone) is None

    await wait_until(tombstoned, 30)


@pytest.fixture
async def revoking(broker_settings: Any) -> AsyncIterator[Broker]:
    """A consuming broker that signs as ``oauth-broker`` (the vault trusts that name),
    so its revoker can take hand-offs; its consumer group is its schema's own."""
    spec = dataclasses.replace(SPEC, background=())
    async with service_client(spec, broker_settings(), name="oauth-broker") as client:
        await wait_until(lambda: client.runtime.messaging.status == "running", 60)
        yield client


@dataclasses.dataclass
class Deleted:
    """A credential imported through one replica, then deleted in the vault."""

    cid: str
    refresh: str
    access: str
    imported: httpx.Response
    event: Any


async def import_then_delete(
    revoking: Broker, start_broker: Any, endpoint: RotatingEndpoint, vault_url: str,
    jwt_keys: tuple[str, str], kafka_bootstrap: str, org: str,
) -> Deleted:  # fmt: skip
    """Import a grant through a replica of its own (the consuming one never holds its
    tokens in memory), then delete the credential in the vault; its deletion event."""
    connector, config = await seed_config(revoking, org, rotating_settings(endpoint))
    async with start_broker(schema=revoking.schema) as other:
        imported = await other.post(
            "/v1/oauth/tokens:import",
            json={"connectorId": str(connector), "authSchemeConfigId": config,
                  "refreshToken": endpoint.grant(org)},
            headers=headers(jwt_keys, org, "oauth:tokens"),
        )  # fmt: skip
    assert imported.status_code == 201, imported.text
    cid = imported.json()["credentialId"]
    refresh = endpoint.families[org].current
    (access,) = endpoint.access_tokens
    event = await delete_in_vault(vault_url, jwt_keys, kafka_bootstrap, org, cid)
    return Deleted(cid, refresh, access, imported, event)


async def delete_in_vault(
    vault_url: str, jwt_keys: tuple[str, str], kafka_bootstrap: str, org: str, cid: str
) -> Any:
    """Delete the credential in the vault; its ``credential.deleted`` event."""
    async with TopicReader(kafka_bootstrap, "credential.deleted") as reader:
        write = headers(jwt_keys, org, "credentials:write")
        async with httpx.AsyncClient(base_url=vault_url) as vault:
            deleted = await vault.delete(f"/v1/credentials/{cid}", headers=write)
        assert deleted.status_code == 204, deleted.text
        events = await reader.events(CredentialDeleted, where=lambda e: e.subject == cid)
    return events[0]


async def test_a_deleted_credential_is_revoked_at_the_provider_once(
    revoking: Broker,
    start_broker: Any,
    vault_process: ServiceProcesses,
    jwt_keys: tuple[str, str],
    kafka_bootstrap: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The consuming replica (which never held the tokens) takes the vault's hand-off
    and revokes the refresh token, then the access token, with the config's client;
    the hand-off is gone; the same event redelivered (and a second deletion event)
    revoke nothing more."""
    org = new_org()
    vault_url = vault_process.url("credential-vault")
    async with serve_rotating(RotatingEndpoint()) as endpoint:
        gone = await import_then_delete(revoking, start_broker, endpoint, vault_url, jwt_keys,
                                        kafka_bootstrap, org)  # fmt: skip
        await wait_until(lambda: len(endpoint.revoked) >= 2, 30, message="no revocation")
        assert endpoint.revoked == [
            (gone.refresh, "refresh_token", "plugboard"),
            (gone.access, "access_token", "plugboard"),
        ]
        assert endpoint.families[org].revoked
        revoke = headers(jwt_keys, org, "credentials:revoke")
        async with httpx.AsyncClient(base_url=vault_url) as vault:
            again = await vault.post(f"/v1/credentials/{gone.cid}:take-revocation",
                                     headers=revoke)  # fmt: skip
        assert again.status_code == 404  # the hand-off was taken: single use

        marker = await _redeliver(kafka_bootstrap, gone.event, org)
        await wait_until(lambda: _inbox_has(revoking, marker), 30)
        await revoking.deps.revoker.drain()
        assert len(endpoint.revoked) == 2
    logs = capfd.readouterr().out + vault_process.log("credential-vault")
    for secret in (gone.refresh, gone.access):
        Canary(secret).assert_absent(logs=logs, events=[gone.event], bodies=[gone.imported, again])


async def test_a_take_whose_answer_was_lost_is_repeated_and_still_revokes(
    broker_settings: Any,
    start_broker: Any,
    vault_process: ServiceProcesses,
    jwt_keys: tuple[str, str],
    kafka_bootstrap: str,
) -> None:
    """The vault hands the tokens over but the answer never reaches the broker: the
    take's Idempotency-Key lets the retry get them again, and both tokens are revoked."""
    org = new_org()
    vault_url = vault_process.url("credential-vault")
    spec = dataclasses.replace(SPEC, background=())
    async with (
        losing_proxy(vault_url, b":take-revocation") as proxy,
        serve_rotating(RotatingEndpoint()) as endpoint,
        service_client(spec, broker_settings(vault_url=proxy.url), name="oauth-broker") as revoking,
    ):  # fmt: skip
        await wait_until(lambda: revoking.runtime.messaging.status == "running", 60)
        gone = await import_then_delete(revoking, start_broker, endpoint, vault_url, jwt_keys,
                                        kafka_bootstrap, org)  # fmt: skip
        await wait_until(lambda: len(endpoint.revoked) >= 2, 30, message="no revocation")
    assert proxy.lost == 1
    assert [(token, hint) for token, hint, _ in endpoint.revoked] == [
        (gone.refresh, "refresh_token"), (gone.access, "access_token")]  # fmt: skip


async def test_transient_provider_failures_are_retried_in_the_background(
    revoking: Broker,
    start_broker: Any,
    vault_process: ServiceProcesses,
    jwt_keys: tuple[str, str],
    kafka_bootstrap: str,
) -> None:
    """Two 503s on the refresh token's revocation, then success; a 400 (permanent) on the
    access token's is logged and not retried."""
    org = new_org()
    vault_url = vault_process.url("credential-vault")
    async with serve_rotating(RotatingEndpoint()) as endpoint:
        endpoint.revoke_script = {"refresh_token": [503, 503], "access_token": [400]}
        gone = await import_then_delete(revoking, start_broker, endpoint, vault_url, jwt_keys,
                                        kafka_bootstrap, org)  # fmt: skip
        scripted = endpoint.revoke_script.values()
        await wait_until(lambda: not any(scripted), 30, message="not retried")
        await revoking.deps.revoker.drain()
        assert endpoint.revoked == [(gone.refresh, "refresh_token", "plugboard")]


async def test_a_grant_made_with_its_source_client_is_revoked_by_that_client(
    revoking: Broker,
    start_broker: Any,
    vault_process: ServiceProcesses,
    jwt_keys: tuple[str, str],
    kafka_bootstrap: str,
) -> None:
    """A password grant whose source names the customer's own client: the provider only
    accepts that client's revocation of its tokens (RFC 7009 2.1)."""
    org = new_org()
    vault_url = vault_process.url("credential-vault")
    source = {"username": "jane", "password": "pw", "clientId": "customer-client",
              "clientSecret": "customer-secret"}  # fmt: skip
    async with httpx.AsyncClient(base_url=vault_url) as vault:
        stored = await vault.post(
            "/v1/credentials",
            json={"name": "source", "type": "oauth2-password", "data": source},
            headers=headers(jwt_keys, org, "credentials:write"),
        )
    assert stored.status_code == 201, stored.text
    async with serve_rotating(RotatingEndpoint()) as endpoint:
        settings = rotating_settings(endpoint).model_copy(update={"grant_type": GrantType.PASSWORD})
        connector, config = await seed_config(revoking, org, settings)
        async with start_broker(schema=revoking.schema) as other:
            granted = await other.post(
                "/v1/oauth/grants",
                json={"connectorId": str(connector), "authSchemeConfigId": config,
                      "grantType": "password", "sourceCredentialId": stored.json()["id"]},
                headers=headers(jwt_keys, org, "oauth:tokens"),
            )  # fmt: skip
        assert granted.status_code == 201, granted.text
        cid = granted.json()["credentialId"]
        await delete_in_vault(vault_url, jwt_keys, kafka_bootstrap, org, cid)
        await wait_until(lambda: len(endpoint.revoked) >= 2, 30, message="no revocation")
    assert [(hint, client) for _, hint, client in endpoint.revoked] == [
        ("refresh_token", "customer-client"),
        ("access_token", "customer-client"),
    ]


async def _redeliver(bootstrap: str, event: Any, org: str) -> Any:
    """The same event again (same id: the inbox drops it), then a new deletion event of
    the same credential, on the same partition (the tombstone's guard drops it); the
    new event's id, whose inbox row shows both were handled."""
    newer = event.data.model_copy(update={"version": event.data.version + 1})
    second = new_event("credential.deleted", source="test", orgid=org, data=newer)
    producer = await kafka.create_producer(bootstrap)
    try:
        for sent in (event, second):
            await producer.send_and_wait("credential.deleted", sent.to_json_bytes(),
                                         key=sent.subject.encode())  # fmt: skip
    finally:
        await producer.stop()
    return second.id


async def _inbox_has(broker: Broker, event_id: Any) -> bool:
    found = await broker.deps.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1",
                                            event_id)  # fmt: skip
    return bool(found)
