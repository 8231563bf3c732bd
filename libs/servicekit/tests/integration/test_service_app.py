"""The service app factory on real servers: a request's state change and its event
commit together, the relay publishes, the service's consumer applies it; health,
readiness and metrics answer as operators expect."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import outbox
from plugboard_servicekit.app import (
    Runtime,
    ServiceSpec,
    create_service_app,
    dependencies_of,
    runtime_of,
)
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.db import Connection
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.subscriptions import on
from pydantic import BaseModel

from .conftest import wait_until
from .test_outbox_inbox import read_topic

pytestmark = pytest.mark.integration
TOPIC = f"test.notes.{uuid.uuid4().hex[:8]}"


class NoteIn(BaseModel):
    text: str


@dataclass
class NotesDeps:
    """The demo service's composition root: what routes, handlers and checks share."""

    pool: asyncpg.Pool
    gate_open: bool = False
    closed: list[str] = field(default_factory=list)


@asynccontextmanager
async def notes_deps(runtime: Runtime[ServiceSettings]) -> AsyncIterator[NotesDeps]:
    deps = NotesDeps(runtime.pool)
    try:
        yield deps
    finally:
        deps.closed.append("closed")


WriteCall = Annotated[Call[NotesDeps], authorize("notes:write")]


def notes_router(topic: str = TOPIC) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/notes", status_code=201)
    async def create_note(body: NoteIn, call: WriteCall) -> dict[str, str]:
        note_id = uuid7()
        event = CloudEvent[dict[str, Any]](
            id=uuid7(),
            source="demo",
            type=topic,
            subject=str(note_id),
            time=datetime.now(UTC),
            dataschema=None,
            orgid=call.caller.org,
            data={"noteId": str(note_id)},
        )
        async with call.deps.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO notes (id, org_id, text) VALUES ($1, $2, $3)",
                note_id,
                call.caller.org,
                body.text,
            )
            await outbox.add(conn, event)
        return {"id": str(note_id)}

    return router


async def apply_note_event(
    deps: NotesDeps, conn: Connection, event: CloudEvent[dict[str, Any]]
) -> None:
    assert isinstance(deps, NotesDeps)
    await conn.execute("INSERT INTO note_effects (note_id) VALUES ($1)", event.data["noteId"])


async def gate_check(deps: NotesDeps) -> str | None:
    return None if deps.gate_open else "gate closed"


def notes_backlog(deps: NotesDeps) -> str | None:
    """A report: shown in /readyz, never a reason to be unready."""
    return "notes pending review" if deps.gate_open else None


@pytest.fixture
async def demo_app(
    postgres_dsn: str, kafka_bootstrap: str, fresh_schema: str, jwt_keys: tuple[str, str]
) -> AsyncIterator[FastAPI]:
    spec = ServiceSpec(
        name=f"demo-{fresh_schema}",
        schema=fresh_schema,
        migrations=Path(__file__).parent / "app_migrations",
        settings_type=ServiceSettings,
        dependencies=notes_deps,
        routers=[notes_router()],
        subscriptions=[on(TOPIC, apply_note_event)],
        readiness=[gate_check],
        reports=[notes_backlog],
    )
    settings = ServiceSettings(
        database_url=postgres_dsn,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key=jwt_keys[1],
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        broker_probe_seconds=0.2,
    )
    app = create_service_app(spec, settings)
    async with app.router.lifespan_context(app):
        yield app
        deps = dependencies_of(app)
    assert deps.closed == ["closed"]  # the composition root was closed on shutdown


async def test_request_to_event_to_effect_with_health_and_metrics(
    demo_app: FastAPI, jwt_keys: tuple[str, str]
) -> None:
    runtime = runtime_of(demo_app)
    deps: NotesDeps = dependencies_of(demo_app)
    transport = httpx.ASGITransport(app=demo_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        assert (await client.get("/healthz")).json() == {"status": "alive"}

        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.headers["content-type"] == "application/problem+json"
        assert not_ready.json()["checks"]["gate_check"] == "gate closed"

        deps.gate_open = True

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, timeout=30)

        async def messaging_running() -> bool:
            return (await client.get("/readyz")).json()["reported"]["messaging"] == "running"

        await wait_until(messaging_running, timeout=30)
        body = (await client.get("/readyz")).json()
        assert body["checks"] == {"database": "ok", "jwt_key": "ok", "gate_check": "ok"}
        assert body["reported"] == {
            "broker": "up",
            "messaging": "running",
            "notes_backlog": "notes pending review",
        }

        token = mint_token(jwt_keys[0], sub="user-1", org="org-a", scopes=["notes:write"])
        created = await client.post(
            "/v1/notes", json={"text": "hello"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201
        note_id = uuid.UUID(created.json()["id"])

        async def applied() -> bool:
            found = await runtime.pool.fetchval(
                "SELECT count(*) FROM note_effects WHERE note_id = $1", note_id
            )
            return found == 1

        await wait_until(applied, timeout=30)
        await asyncio.sleep(0.5)  # the relay deletes the row after the broker's ack
        assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0

        [published] = await read_topic(runtime.settings.kafka_bootstrap_servers, TOPIC, 1)
        traceparent = dict(published.headers)["traceparent"].decode()
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", traceparent)
        assert published.key == str(note_id).encode()

        exposition = (await client.get("/metrics")).text
        assert "plugboard_http_request_duration_seconds_count{" in exposition
        assert f'plugboard_broker_up{{service="{runtime.spec.name}"}} 1.0' in exposition
        assert f'plugboard_events_published_total{{topic="{TOPIC}"}}' in exposition
        assert f'topic="{TOPIC}"' in exposition.split("plugboard_events_consumed_total", 1)[1]
