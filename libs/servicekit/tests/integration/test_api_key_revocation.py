"""Revoking an API key takes effect at once in a service with no subscriptions of its
own: an ``api_key.revoked`` event published through the outbox reaches the built-in
consumer, every replica refuses the key's tokens (NOTIFY), a restarted replica loads
the revocation from its table, and a redelivered event changes nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import APIRouter
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import ApiKeyRevoked
from plugboard_contracts.topics import new_event
from plugboard_servicekit import http, outbox
from plugboard_servicekit.app import Runtime, ServiceSpec, runtime_dependencies
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.subscriptions import on
from plugboard_servicekit.testing import AppClient, service_client, wait_until

pytestmark = pytest.mark.integration
ORG = "org-revoke"

router = APIRouter(prefix="/v1")
ReadCall = Annotated[Call[Runtime[ServiceSettings]], authorize("things:read")]


@router.get("/whoami")
async def whoami(call: ReadCall) -> dict[str, str]:
    return {"sub": call.caller.sub}


SPEC = ServiceSpec[ServiceSettings, Runtime[ServiceSettings]](
    name="revoke-demo",
    schema="unused",
    migrations=Path(__file__).parent / "app_migrations",
    settings_type=ServiceSettings,
    dependencies=runtime_dependencies,
    routers=[router],
)
"""No subscriptions of its own: the revocation consumer must still run."""


def subject(project: UUID, key: UUID) -> str:
    return f"apikey:{project}:{key}"


def revoked_event(project: UUID, key: UUID, *, ttl: int = 300) -> CloudEvent[ApiKeyRevoked]:
    now = datetime.now(UTC)
    data = ApiKeyRevoked(
        organisation_id=ORG,
        key_id=key,
        project_id=project,
        subject=subject(project, key),
        revoked_at=now,
        not_after=now + timedelta(seconds=ttl),
    )
    return new_event("api_key.revoked", source="installation", orgid=ORG, data=data)


async def publish(client: AppClient[Any, Any], event: CloudEvent[Any]) -> None:
    """Through the app's own outbox, as installation publishes it."""
    async with client.runtime.pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, event)


async def status(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_revoked_key_is_refused_by_every_replica_and_after_restart(
    service_settings: Callable[..., ServiceSettings], jwt_keys: tuple[str, str]
) -> None:
    settings = service_settings(SPEC)
    project, key, other_key = uuid7(), uuid7(), uuid7()
    token = mint_token(jwt_keys[0], sub=subject(project, key), org=ORG, scopes=["things:read"])
    other = mint_token(
        jwt_keys[0], sub=subject(project, other_key), org=ORG, scopes=["things:read"]
    )
    async with service_client(SPEC, settings) as first:
        async with service_client(SPEC, settings, schema=first.schema) as second:
            for client in (first, second):
                assert await status(client, token) == 200  # verified, now cached
                assert await status(client, other) == 200
            event = revoked_event(project, key)
            await publish(first, event)

            for client in (first, second):  # one consumed it, both heard the NOTIFY
                await wait_until(
                    lambda c=client: _refuses(c, token), message="revoked token still accepted"
                )
                assert await status(client, other) == 200
            refused = await first.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert refused.headers["content-type"] == "application/problem+json"
            assert "revoked" in refused.json()["detail"]
            assert token not in refused.text

            await publish(first, event)  # a redelivery: the inbox drops it
            later = revoked_event(project, key, ttl=600)  # same key: same partition, after it
            await publish(first, later)
            pool = first.runtime.pool

            async def later_applied() -> bool:
                found = await pool.fetchval(
                    "SELECT not_after FROM revoked_subjects WHERE subject = $1",
                    subject(project, key),
                )
                return found == later.data.not_after

            await wait_until(later_applied, message="the later event was not applied")
            inbox = await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event.id)
            assert inbox == 1
            assert await pool.fetchval("SELECT count(*) FROM revoked_subjects") == 1

        async with service_client(SPEC, settings, schema=first.schema) as restarted:
            assert await status(restarted, token) == 401  # loaded at start-up, no waiting
            assert await status(restarted, other) == 200
            assert http.context_of(restarted.app).verifier.revoked_count == 1
            body = (await restarted.get("/readyz")).json()
            assert "revocations" not in body["reported"]  # listening: nothing to report


async def _refuses(client: httpx.AsyncClient, token: str) -> bool:
    return await status(client, token) == 401


async def test_a_lost_listen_connection_is_reopened_and_the_table_read_again(
    service_settings: Callable[..., ServiceSettings], jwt_keys: tuple[str, str], postgres_dsn: str
) -> None:
    """A revocation recorded while the replica is not listening (its NOTIFY is lost)
    is still refused once the watcher has reconnected and reloaded."""
    settings = service_settings(SPEC)
    project, key = uuid7(), uuid7()
    token = mint_token(jwt_keys[0], sub=subject(project, key), org=ORG, scopes=["things:read"])
    async with service_client(SPEC, settings) as client:
        assert await status(client, token) == 200
        admin = await asyncpg.connect(postgres_dsn)
        try:
            async with client.runtime.pool.acquire() as conn, conn.transaction():
                await conn.execute(  # as the consumer records it, minus the NOTIFY
                    "INSERT INTO revoked_subjects (subject, revoked_at, not_after)"
                    " VALUES ($1, now(), now() + interval '5 minutes')",
                    subject(project, key),
                )
            assert await status(client, token) == 200  # nobody told this replica
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE usename = $1 AND query LIKE '%FROM revoked_subjects%WHERE not_after >%'",
                client.schema,
            )
            assert killed == 1  # exactly the watcher's LISTEN connection
        finally:
            await admin.close()
        await wait_until(lambda: _refuses(client, token), message="not reloaded after reconnect")


SEEN_BY_SERVICE: list[UUID] = []
"""The ids of the events the service's own handler ran for."""


async def on_revoked_too(_deps: object, _conn: object, event: CloudEvent[ApiKeyRevoked]) -> None:
    SEEN_BY_SERVICE.append(event.id)


LISTENING_SPEC = dataclasses.replace(
    SPEC, name="revoke-listener", subscriptions=(on("api_key.revoked", on_revoked_too),)
)
"""Subscribes to ``api_key.revoked`` itself: it must start, and both handlers run."""


async def test_a_service_with_its_own_revocation_handler_runs_it_with_the_builtin(
    service_settings: Callable[..., ServiceSettings], jwt_keys: tuple[str, str]
) -> None:
    project, key = uuid7(), uuid7()
    token = mint_token(jwt_keys[0], sub=subject(project, key), org=ORG, scopes=["things:read"])
    async with service_client(LISTENING_SPEC, service_settings(LISTENING_SPEC)) as client:
        assert await status(client, token) == 200
        event = revoked_event(project, key)
        await publish(client, event)
        await wait_until(lambda: _refuses(client, token), message="revoked token still accepted")
        await wait_until(lambda: event.id in SEEN_BY_SERVICE, message="own handler did not run")
        await publish(client, event)  # a redelivery: neither handler runs again
        later = revoked_event(project, key, ttl=600)  # same key: same partition, after it
        await publish(client, later)
        await wait_until(lambda: later.id in SEEN_BY_SERVICE, message="later event not handled")
        assert SEEN_BY_SERVICE.count(event.id) == 1
