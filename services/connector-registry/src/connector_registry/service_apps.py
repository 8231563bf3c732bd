"""Provider apps: an org's own OAuth client registration for a catalogue provider
(Ampersand). The client secret goes to the vault (an ``oauth2-client`` credential
that names the app); events carry the provider's OAuth settings with this app's
client id and the credential id, so the broker can run sessions that name the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads.registry import OAuth2Settings
from plugboard_servicekit import outbox
from plugboard_servicekit.errors import FieldError, Invalid, NotFound
from pydantic import SecretStr

from connector_registry import events
from connector_registry import repository_catalogue as repo
from connector_registry.domain.catalogue import PROVIDER_ADAPTER
from connector_registry.domain.schemes import OAuth2Scheme
from connector_registry.secrets import ClientSecret, SecretStore
from connector_registry.service_catalogue import CatalogueService


@dataclass(frozen=True, slots=True)
class AppChange:
    provider: str | None
    client_id: str | None
    client_secret: SecretStr | None
    scopes: list[str] | None
    external_ref: str | None
    given: frozenset[str]


def _not_found() -> NotFound:
    return NotFound("No such provider app.")


class ProviderAppService:
    def __init__(self, pool: asyncpg.Pool, secrets: SecretStore, catalogue: CatalogueService):
        self.pool = pool
        self.secrets = secrets
        self.catalogue = catalogue

    async def _oauth2(self, org: str, provider: str, row: Any) -> OAuth2Settings:
        try:
            entry = PROVIDER_ADAPTER.validate_python(await self.catalogue.get(org, provider))
        except NotFound:
            raise Invalid(
                "Unknown provider.", errors=[FieldError("body.provider", "unknown")]
            ) from None
        scheme = next((s for s in entry.auth_schemes if isinstance(s, OAuth2Scheme)), None)
        settings = None if scheme is None else events.oauth2_settings(
            scheme, row["client_secret_credential_id"], client_id=row["client_id"],
            scopes=list(row["scopes"]) or None,
        )  # fmt: skip
        if settings is None:
            message = "the provider has no OAuth 2.0 scheme"
            raise Invalid(message, errors=[FieldError("body.provider", message)])
        return settings

    async def get(self, org: str, app_id: UUID) -> Any:
        row = await repo.get_app(self.pool, org, app_id)
        if row is None:
            raise _not_found()
        return row

    async def list(
        self, org: str, after: UUID | None, provider: str | None, limit: int
    ) -> tuple[list[Any], UUID | None]:
        rows = await repo.list_apps(self.pool, org, after, provider, limit + 1)
        return rows[:limit], rows[limit - 1]["id"] if len(rows) > limit else None

    async def create(self, org: str, change: AppChange) -> Any:
        assert change.provider is not None
        assert change.client_id is not None
        app_id = uuid7()
        probe = {"client_secret_credential_id": None, "client_id": change.client_id,
                 "scopes": change.scopes or []}  # fmt: skip
        await self._oauth2(org, change.provider, probe)  # 422 before the vault is touched
        secret_id = await self._store(org, app_id, change, None)
        values = (change.provider, change.client_id, secret_id, change.scopes or [],
                  change.external_ref)  # fmt: skip
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await repo.insert_app(conn, org, app_id, values)
                oauth2 = await self._oauth2(org, change.provider, row)
                await outbox.add(conn, events.app_state("created", org, row, oauth2))
        except BaseException:
            if secret_id is not None:
                await self.secrets.delete(org, secret_id)
            raise
        return row

    async def _store(self, org: str, app_id: UUID, change: AppChange, current: Any) -> UUID | None:
        secret = change.client_secret.get_secret_value() if change.client_secret else None
        stored = current["client_secret_credential_id"] if current is not None else None
        client_id = change.client_id or (current["client_id"] if current is not None else None)
        if secret is None and (stored is None or "client_id" not in change.given):
            return stored
        if stored is not None:
            await self.secrets.merge(org, stored, ClientSecret(client_id, secret))
            return stored
        provider = change.provider or (current["provider"] if current is not None else "")
        label = f"provider app {provider}"
        return await self.secrets.create(org, label, ClientSecret(client_id, secret), app_id)

    async def update(self, org: str, app_id: UUID, change: AppChange) -> Any:
        current = await self.get(org, app_id)
        secret_id = await self._store(org, app_id, change, current)
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await repo.get_app(conn, org, app_id, lock=True)
            if locked is None:
                raise _not_found()
            values = _merged(change, locked, secret_id)
            row = await repo.update_app(conn, org, app_id, values)
            oauth2 = await self._oauth2(org, row["provider"], row)
            await outbox.add(conn, events.app_state("updated", org, row, oauth2))
        return row

    async def delete(self, org: str, app_id: UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.delete_app(conn, org, app_id)
            if row is None:
                raise _not_found()
            await outbox.add(conn, events.app_deleted(org, row))
        if row["client_secret_credential_id"] is not None:
            await self.secrets.delete(org, row["client_secret_credential_id"])


def _merged(change: AppChange, locked: Any, secret_id: UUID | None) -> tuple[Any, ...]:
    """The app's columns with the patch applied (absent or null: unchanged)."""
    given = change.given

    def pick(name: str, value: Any) -> Any:
        return value if name in given and value is not None else locked[name]

    return (
        pick("provider", change.provider),
        pick("client_id", change.client_id),
        secret_id,
        pick("scopes", change.scopes),
        change.external_ref if "external_ref" in given else locked["external_ref"],
    )
