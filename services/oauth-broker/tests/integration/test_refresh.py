"""Refresh races and failures against a rotating token endpoint (a refresh token works
once; reuse revokes the family): exactly one refresh under contention, retries after
a 500, one refresh_failed for invalid_grant, default lifetime without expires_in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any
from uuid import UUID

import httpx
import pytest
from broker_helpers import Broker, access, headers, new_org, publishing, seed_config
from broker_rotating import RotatingEndpoint, rotating_settings, serve_rotating
from oauth_broker import repository as repo
from oauth_broker.provider import LeaseLostError
from plugboard_contracts.payloads import CredentialRefreshFailed
from plugboard_servicekit.testing import Canary, TopicReader, wait_until

pytestmark = pytest.mark.integration
StartBroker = Callable[..., AbstractAsyncContextManager[Broker]]


@pytest.fixture
async def endpoint() -> AsyncIterator[RotatingEndpoint]:
    async with serve_rotating(RotatingEndpoint()) as running:
        yield running


async def imported(
    broker: Broker, endpoint: RotatingEndpoint, jwt_keys: tuple[str, str], org: str, name: str
) -> UUID:
    """An oauth2-token credential through tokens:import (one refresh proves the grant)."""
    connector, config = await seed_config(broker, org, rotating_settings(endpoint))
    body = {"connectorId": str(connector), "authSchemeConfigId": config,
            "refreshToken": endpoint.grant(name)}  # fmt: skip
    response = await broker.post("/v1/oauth/tokens:import", json=body,
                                 headers=headers(jwt_keys, org, "oauth:tokens"))  # fmt: skip
    assert response.status_code == 201, response.text
    return UUID(response.json()["credentialId"])


async def make_due(broker: Broker, credential_id: UUID) -> None:
    """As if the token were about to expire: the schedule says due now."""
    await broker.deps.pool.execute(
        "UPDATE tokens SET due_at = now() - interval '1 second', access_expires_at = now()"
        " WHERE credential_id = $1", credential_id,
    )  # fmt: skip


async def expire_in_vault(vault_url: str, jwt_keys: tuple[str, str], org: str, cid: UUID) -> None:
    async with httpx.AsyncClient(base_url=vault_url) as vault:
        expired = {"data": {"accessTokenExpiresAt": "2020-01-01T00:00:00Z"}}
        response = await vault.patch(
            f"/v1/credentials/{cid}", json=expired,
            headers={**headers(jwt_keys, org, "credentials:write"),
                     "Content-Type": "application/merge-patch+json"},
        )  # fmt: skip
        assert response.status_code == 200, response.text


async def test_fifty_callers_and_two_schedulers_make_exactly_one_refresh(
    start_broker: StartBroker,
    endpoint: RotatingEndpoint,
    jwt_keys: tuple[str, str],
    vault_process: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    org = new_org()
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(start_broker(scheduler_enabled=True))
        second = await stack.enter_async_context(
            start_broker(schema=first.schema, scheduler_enabled=True)
        )
        cid = await imported(first, endpoint, jwt_keys, org, "race")
        await expire_in_vault(vault_process.url("credential-vault"), jwt_keys, org, cid)
        await make_due(first, cid)
        answers = await asyncio.gather(
            *(access(first if i % 2 else second, jwt_keys, org, cid) for i in range(50))
        )
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers][:3]
        tokens = {a.json()["accessToken"] for a in answers}
        await wait_until(lambda: _settled(first), 10)
        assert endpoint.refreshes()["race"] == 2  # the import's and exactly one more
        assert endpoint.reuses == 0
        assert len(tokens) == 1
        again = await access(first, jwt_keys, org, cid, forceRefresh="true")
        assert again.status_code == 200
        assert endpoint.refreshes()["race"] == 3
        assert endpoint.reuses == 0
        logs = capfd.readouterr().out + vault_process.log("credential-vault")
        Canary(tokens.pop()).assert_absent(logs=logs)


async def _settled(broker: Broker) -> bool:
    row = await broker.deps.pool.fetchrow("SELECT lease_until FROM tokens LIMIT 1")
    return row is not None


async def test_a_500_is_retried_then_succeeds(
    start_broker: StartBroker, endpoint: RotatingEndpoint, jwt_keys: tuple[str, str]
) -> None:
    org = new_org()
    async with start_broker(scheduler_enabled=True, backoff_base_seconds=0.05) as broker:
        cid = await imported(broker, endpoint, jwt_keys, org, "flaky")
        endpoint.script = [500]
        await make_due(broker, cid)

        async def recorded() -> bool:
            return bool(await broker.deps.pool.fetchval(
                "SELECT refreshes = 1 FROM tokens WHERE credential_id = $1", cid
            ))  # fmt: skip

        await wait_until(recorded, 15)
        row = await broker.deps.pool.fetchrow(
            "SELECT status, attempts, last_error FROM tokens WHERE credential_id = $1", cid
        )
        assert row is not None
        assert (row["status"], row["attempts"], row["last_error"]) == ("active", 0, None)
        assert endpoint.refreshes()["flaky"] == 2
        assert endpoint.requests["refresh_token"] == 3  # import, the 500, the retry


async def test_invalid_grant_publishes_refresh_failed_once(
    start_broker: StartBroker,
    endpoint: RotatingEndpoint,
    jwt_keys: tuple[str, str],
    kafka_bootstrap: str,
    vault_process: Any,
) -> None:
    org = new_org()
    async with AsyncExitStack() as stack:
        reader = await stack.enter_async_context(
            TopicReader(kafka_bootstrap, "credential.refresh_failed")
        )
        first = await stack.enter_async_context(start_broker(scheduler_enabled=True))
        second = await stack.enter_async_context(
            start_broker(schema=first.schema, scheduler_enabled=True)
        )
        await publishing(first)
        await publishing(second)
        cid = await imported(first, endpoint, jwt_keys, org, "dead")
        endpoint.families["dead"].revoked = True
        await expire_in_vault(vault_process.url("credential-vault"), jwt_keys, org, cid)
        await make_due(first, cid)
        answers = await asyncio.gather(
            *(access(b, jwt_keys, org, cid) for b in (first, second) * 5)
        )
        assert {a.status_code for a in answers} <= {409}
        events = await reader.events(
            CredentialRefreshFailed, 1, timeout=20, settle=2.0,
            where=lambda e: e.data.credential_id == cid,
        )  # fmt: skip
        assert len(events) == 1
        assert (events[0].data.error, events[0].data.retryable) == ("invalid_grant", False)
        calls = endpoint.requests["refresh_token"]
        refused = await access(first, jwt_keys, org, cid)
        assert refused.status_code == 409
        assert refused.json()["error"] == "invalid_grant"
        assert endpoint.requests["refresh_token"] == calls  # no provider call any more


async def test_token_without_expires_in_is_refreshed_by_the_default_lifetime(
    start_broker: StartBroker, endpoint: RotatingEndpoint, jwt_keys: tuple[str, str]
) -> None:
    endpoint.expires_in = None
    org = new_org()
    async with start_broker(scheduler_enabled=True, default_token_lifetime_seconds=2) as broker:
        await imported(broker, endpoint, jwt_keys, org, "forever")

        async def refreshed_again() -> bool:
            return endpoint.refreshes()["forever"] >= 2

        await wait_until(refreshed_again, 15)
        assert endpoint.reuses == 0


async def test_a_refresh_whose_lease_was_taken_over_never_reaches_the_provider(
    start_broker: StartBroker, endpoint: RotatingEndpoint, jwt_keys: tuple[str, str]
) -> None:
    """The fencing check right before the provider call. A holder that stalled past its
    lease finds it claimed by another replica and stops with its refresh token unused
    (a lease shorter than a provider call: every check asks Postgres)."""
    org = new_org()
    async with start_broker(lease_seconds=0.3, provider_timeout_seconds=1) as broker:
        pool, keeper = broker.deps.pool, broker.deps.keeper
        cid = await imported(broker, endpoint, jwt_keys, org, "stalled")
        await make_due(broker, cid)
        [stalled] = [r for r in await repo.claim_due(pool, keeper.owner, 100, 0.3)
                     if r.credential_id == cid]  # fmt: skip
        await asyncio.sleep(0.5)
        [taken] = [r for r in await repo.claim_due(pool, "oauth-broker:other", 100, 30)
                   if r.credential_id == cid]  # fmt: skip
        with pytest.raises(LeaseLostError):
            await keeper.refresh_scheduled(stalled)
        assert endpoint.refreshes()["stalled"] == 1  # the import's only
        assert endpoint.reuses == 0
        row = await repo.get_token(pool, org, cid)
        assert row is not None
        assert (row.lease_owner, row.fencing) == ("oauth-broker:other", taken.fencing)
