"""A running vault (real PostgreSQL, real broker) on the servicekit test kit.

``plugboard_servicekit.testing`` runs the app (``service_client``), reads topics
(``TopicReader``) and waits (``wait_until``); this module only adds what is the
vault's own: a key ring, tokens with the vault's scopes and a few request helpers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from credential_vault.app import SPEC
from credential_vault.keyring import generate_keyring_file
from credential_vault.service import VaultDeps
from credential_vault.settings import VaultSettings
from fastapi import FastAPI
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.testing import AppClient, service_client, test_settings, wait_until

__all__ = ["ALL_SCOPES", "Vault", "snapshot", "wait_until"]

ALL_SCOPES = (
    "credentials:read",
    "credentials:write",
    "credentials:reveal",
    "credentials:refresh",
    "credentials:revoke",
)


@dataclass
class Vault:
    """One vault replica under test: its client, and token and request helpers."""

    client: AppClient[VaultSettings, VaultDeps]
    keyring_file: Path
    private_key: str

    @property
    def app(self) -> FastAPI:
        return self.client.app

    @property
    def settings(self) -> VaultSettings:
        return self.client.settings

    @property
    def schema(self) -> str:
        return self.client.schema

    @property
    def deps(self) -> VaultDeps:
        return self.client.deps

    @property
    def pool(self) -> asyncpg.Pool:
        """The service role's pool (the role that owns the vault's tables)."""
        return self.client.deps.pool

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


async def snapshot(vault: Vault) -> dict[str, Any]:
    """Everything stored: any refused request must leave this unchanged. Refusals do
    write their own audit rows (outcome not ``ok``), which are not part of it."""
    pool = vault.pool
    return {
        "credentials": await pool.fetch("SELECT * FROM credentials ORDER BY id"),
        "data_keys": await pool.fetch("SELECT * FROM data_keys ORDER BY org_id, version"),
        "usages": await pool.fetch("SELECT * FROM credential_usages ORDER BY 1, 2"),
        "handoffs": await pool.fetch("SELECT * FROM revocation_handoffs ORDER BY credential_id"),
        "audit": await pool.fetchval("SELECT count(*) FROM audit_log WHERE outcome = 'ok'"),
        "outbox": await pool.fetchrow("SELECT last_value, is_called FROM outbox_id_seq"),
    }


@asynccontextmanager
async def running_vault(
    settings: VaultSettings,
    private_key: str,
    *,
    schema: str | None = None,
    ready: bool = True,
    name: str | None = None,
) -> AsyncIterator[Vault]:
    """``name``: the service name (its identity, the audience of service tokens);
    by default one of its own per schema, so each test has its own consumer group."""
    async with service_client(SPEC, settings, schema=schema, ready=ready, name=name) as client:
        yield Vault(client, settings.keyring_file or Path(), private_key)


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    generate_keyring_file(path)
    return path


def vault_settings(
    postgres_dsn: str, kafka_bootstrap: str, public_key: str, keyring_file: Path, **extra: Any
) -> VaultSettings:
    return test_settings(
        SPEC,
        postgres_dsn=postgres_dsn,
        kafka_bootstrap=kafka_bootstrap,
        jwt_public_key=public_key,
        keyring_file=keyring_file,
        keyring_reload_seconds=0.2,
        log_level="INFO",
        **extra,
    )


@pytest.fixture
def settings(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str], keyring_file: Path
) -> VaultSettings:
    return vault_settings(postgres_dsn, kafka_bootstrap, jwt_keys[1], keyring_file)


@pytest.fixture
async def vault(
    settings: VaultSettings, fresh_schema: str, jwt_keys: tuple[str, str]
) -> AsyncIterator[Vault]:
    async with running_vault(settings, jwt_keys[0], schema=fresh_schema) as running:
        yield running


@pytest.fixture
def start_vault(fresh_schema: str, jwt_keys: tuple[str, str]) -> Callable[..., Any]:
    """``async with start_vault(settings, ready=...)``: a replica on the test's schema
    (a second one started in the same test joins the first)."""

    def start(settings: VaultSettings, *, ready: bool = True) -> Any:
        return running_vault(settings, jwt_keys[0], schema=fresh_schema, ready=ready)

    return start
