"""Readiness means "this process can serve its HTTP API": a Kafka outage is reported
in the /readyz body and in plugboard_broker_up, never as a 503. Writes go to the
outbox meanwhile and drain when the broker is back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from plugboard_servicekit.app import ServiceSpec, create_service_app, dependencies_of
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.embedded import free_port, start_tansu
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.testing.backends import BrokerProcess

from .conftest import wait_until
from .test_outbox_inbox import read_topic
from .test_service_app import NotesDeps, notes_deps, notes_router

pytestmark = pytest.mark.integration
TOPIC = f"test.outage-notes.{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def notes_service(
    dsn: str, bootstrap: str, schema: str, public_pem: str
) -> AsyncIterator[httpx.AsyncClient]:
    spec = ServiceSpec(
        name=f"outage-{schema}",
        schema=schema,
        migrations=Path(__file__).parent / "app_migrations",
        settings_type=ServiceSettings,
        dependencies=notes_deps,
        routers=[notes_router(TOPIC)],
    )
    settings = ServiceSettings(
        database_url=dsn,
        kafka_bootstrap_servers=bootstrap,
        jwt_public_key=public_pem,
        broker_probe_seconds=0.2,
    )
    app = create_service_app(spec, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def app_of(client: httpx.AsyncClient) -> FastAPI:
    return client.app  # type: ignore[attr-defined]


async def ready_body(client: httpx.AsyncClient) -> dict:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text  # ready whatever the broker does
    return response.json()


async def write_notes(client: httpx.AsyncClient, private_pem: str, count: int) -> None:
    token = mint_token(private_pem, sub="user-1", org="org-a", scopes=["notes:write"])
    for index in range(count):
        created = await client.post(
            "/v1/notes", json={"text": f"n{index}"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201


async def outbox_rows(client: httpx.AsyncClient) -> int:
    deps: NotesDeps = dependencies_of(app_of(client))
    return await deps.pool.fetchval("SELECT count(*) FROM outbox")


async def test_started_while_kafka_is_down_it_serves_and_drains_when_kafka_comes(
    postgres_dsn: str, fresh_schema: str, jwt_keys: tuple[str, str]
) -> None:
    port = free_port("127.0.0.1")
    bootstrap = f"127.0.0.1:{port}"
    async with notes_service(postgres_dsn, bootstrap, fresh_schema, jwt_keys[1]) as client:

        async def broker_seen(state: str) -> bool:
            return (await ready_body(client))["reported"]["broker"] == state

        await wait_until(lambda: broker_seen("down"), timeout=10)
        body = await ready_body(client)
        assert body["status"] == "ready"
        assert body["reported"] == {"broker": "down", "messaging": "starting"}
        metrics = (await client.get("/metrics")).text
        assert f'plugboard_broker_up{{service="outage-{fresh_schema}"}} 0.0' in metrics

        await write_notes(client, jwt_keys[0], 3)
        assert await outbox_rows(client) == 3  # kept, waiting for the broker

        broker = start_tansu(port)
        try:

            async def drained() -> bool:
                return await outbox_rows(client) == 0

            await wait_until(drained, timeout=60)
            body = await ready_body(client)
            assert body["reported"] == {"broker": "up", "messaging": "running"}
            assert len(await read_topic(bootstrap, TOPIC, 3)) == 3
        finally:
            broker.stop()


async def test_a_stalled_broker_is_reported_and_writes_still_succeed(
    postgres_dsn: str,
    kafka_bootstrap: str,
    fresh_schema: str,
    jwt_keys: tuple[str, str],
    broker_process: BrokerProcess,
) -> None:
    async with notes_service(postgres_dsn, kafka_bootstrap, fresh_schema, jwt_keys[1]) as client:

        async def reported(broker: str, messaging: str = "running") -> bool:
            body = await ready_body(client)
            return body["reported"] == {"broker": broker, "messaging": messaging}

        await wait_until(lambda: reported("up"), timeout=30)
        broker_process.pause()  # accepts TCP connections, answers nothing
        try:
            await wait_until(lambda: reported("down"), timeout=15)
            await write_notes(client, jwt_keys[0], 2)
            assert await outbox_rows(client) == 2  # kept, waiting for the broker
        finally:
            broker_process.resume()

        async def drained() -> bool:
            return await outbox_rows(client) == 0

        await wait_until(drained, timeout=60)
        await wait_until(lambda: reported("up"), timeout=15)
