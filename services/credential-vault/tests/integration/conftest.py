"""A running vault (real PostgreSQL, real broker) and the helpers its tests share.

Helpers are reached through the ``vault`` fixture so test modules import nothing
from each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from credential_vault.app import SPEC
from credential_vault.keyring import generate_keyring_file
from credential_vault.settings import VaultSettings
from fastapi import FastAPI
from plugboard_contracts.envelope import CloudEvent
from plugboard_servicekit.app import create_service_app
from plugboard_servicekit.auth import mint_token

ALL_SCOPES = (
    "credentials:read",
    "credentials:write",
    "credentials:reveal",
    "credentials:refresh",
)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@dataclass
class Vault:
    """One vault replica under test, with a client and token helpers."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: VaultSettings
    schema: str
    keyring_file: Path
    private_key: str

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app.state.runtime.pool

    def headers(self, org: str = "org-a", scopes: Iterable[str] = ALL_SCOPES) -> dict[str, str]:
        token = mint_token(self.private_key, sub=f"user@{org}", org=org, scopes=scopes)
        return {"Authorization": f"Bearer {token}"}

    async def create(
        self, credential_type: str, data: dict[str, Any], org: str = "org-a", **extra: Any
    ) -> dict[str, Any]:
        body = {"name": f"{credential_type} credential", "type": credential_type, "data": data}
        response = await self.client.post(
            "/v1/credentials", json=body | extra, headers=self.headers(org)
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def reveal(self, credential_id: str, org: str = "org-a") -> httpx.Response:
        return await self.client.post(
            f"/v1/credentials/{credential_id}:reveal", headers=self.headers(org)
        )

    async def read_events(
        self, topic: str, subjects: set[str], *, expected: int, settle: float = 1.0
    ) -> list[CloudEvent[dict[str, Any]]]:
        """Events on ``topic`` about ``subjects``: waits for ``expected``, then ``settle``
        seconds more so that duplicates would show up too."""
        reader = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await reader.start()
        found: list[CloudEvent[dict[str, Any]]] = []
        loop = asyncio.get_running_loop()
        try:
            deadline = loop.time() + 60
            settle_until: float | None = None
            while loop.time() < (settle_until or deadline):
                for records in (await reader.getmany(timeout_ms=200)).values():
                    values = [record.value for record in records if record.value is not None]
                    events = [CloudEvent[dict[str, Any]].from_json_bytes(v) for v in values]
                    found += [event for event in events if event.subject in subjects]
                if settle_until is None and len(found) >= expected:
                    settle_until = loop.time() + settle
        finally:
            await reader.stop()
        return found


def vault_settings(
    postgres_dsn: str, kafka_bootstrap: str, public_key: str, keyring_file: Path, **extra: Any
) -> VaultSettings:
    return VaultSettings(
        database_url=postgres_dsn,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key=public_key,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        keyring_file=keyring_file,
        keyring_reload_seconds=0.2,
        log_level="DEBUG",
        **extra,
    )


@asynccontextmanager
async def running_vault(
    settings: VaultSettings, schema: str, private_key: str, *, ready: bool = True
) -> AsyncIterator[Vault]:
    # A consumer group per test: on Tansu a group whose members just left rejoins slowly.
    spec = dataclasses.replace(SPEC, name=f"credential-vault-{schema}", schema=schema)
    app = create_service_app(spec, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vault") as client:
            vault = Vault(
                app, client, settings, schema, settings.keyring_file or Path(), private_key
            )
            if ready:

                async def is_ready() -> bool:
                    return (await client.get("/readyz")).status_code == 200

                await wait_until(is_ready)
            yield vault


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    generate_keyring_file(path)
    return path


@pytest.fixture
def settings(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str], keyring_file: Path
) -> VaultSettings:
    return vault_settings(postgres_dsn, kafka_bootstrap, jwt_keys[1], keyring_file)


@pytest.fixture
async def vault(
    settings: VaultSettings, fresh_schema: str, jwt_keys: tuple[str, str]
) -> AsyncIterator[Vault]:
    async with running_vault(settings, fresh_schema, jwt_keys[0]) as running:
        yield running


@pytest.fixture
def start_vault(fresh_schema: str, jwt_keys: tuple[str, str]) -> Callable[..., Any]:
    """``async with start_vault(settings, ready=...)``: another replica on the same schema."""

    def start(settings: VaultSettings, *, ready: bool = True) -> Any:
        return running_vault(settings, fresh_schema, jwt_keys[0], ready=ready)

    return start
