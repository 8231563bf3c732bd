"""service_client runs a service's real lifespan on a fresh provisioned schema (its own
role, migrated at start-up) and wait_until polls sync and async conditions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import pytest
from fastapi import APIRouter
from plugboard_servicekit.app import Runtime, ServiceSpec, runtime_dependencies
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.settings import ServiceSettings
from plugboard_servicekit.testing import service_client, wait_until

router = APIRouter(prefix="/v1")
ReadCall = Annotated[Call[Runtime[ServiceSettings]], authorize("items:read")]


@router.get("/items")
async def list_items(call: ReadCall) -> dict[str, Any]:
    rows = await call.deps.pool.fetch("SELECT name FROM items ORDER BY name")
    return {"org": call.caller.org, "items": [row["name"] for row in rows]}


@pytest.fixture
def spec(tmp_path: Path) -> ServiceSpec[ServiceSettings, Runtime[ServiceSettings]]:
    (tmp_path / "0001_items.sql").write_text(
        "CREATE TABLE items (name text PRIMARY KEY); INSERT INTO items VALUES ('a'), ('b');"
    )
    return ServiceSpec(
        name="testkit-app",
        schema="testkit_app",
        migrations=tmp_path,
        settings_type=ServiceSettings,
        dependencies=runtime_dependencies,
        routers=[router],
    )


@pytest.mark.integration
async def test_service_client_runs_the_app_on_a_fresh_schema_as_its_role(
    spec: ServiceSpec[ServiceSettings, Runtime[ServiceSettings]],
    service_settings: Callable[..., ServiceSettings],
    jwt_keys: tuple[str, str],
    postgres_dsn: str,
) -> None:
    settings = service_settings(spec)
    async with service_client(spec, settings) as first, service_client(spec, settings) as second:
        assert first.schema != second.schema
        assert first.schema != spec.schema
        token = mint_token(jwt_keys[0], sub="u", org="org-1", scopes=["items:read"])
        response = await first.get("/v1/items", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.json() == {"org": "org-1", "items": ["a", "b"]}
        assert (await first.get("/v1/items")).status_code == 401
        assert first.runtime.settings.database_url != postgres_dsn  # the service's own role
        assert first.deps is first.runtime  # runtime_dependencies: the deps are the runtime
        owner = await first.runtime.pool.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", first.schema
        )
        assert owner == first.schema
        pool = first.runtime.pool
    assert pool.is_closing()  # the lifespan ended with the block
    conn = await asyncpg.connect(postgres_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'items' AND schemaname = $1",
            second.schema,
        )
    finally:
        await conn.close()
    assert tables == 1


async def test_wait_until_accepts_sync_and_async_predicates() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    await wait_until(third_time, timeout=5, interval=0.001)
    assert len(calls) == 3

    async def ready() -> bool:
        return True

    await wait_until(ready, timeout=0)


async def test_wait_until_fails_with_the_message() -> None:
    with pytest.raises(AssertionError, match="never true"):
        await wait_until(lambda: False, timeout=0.05, interval=0.01, message="never true")
