"""Use cases of connectors and their auth scheme configs.

State change and event are one transaction (``outbox.add``); vault calls happen
before it (secret_rules) and clean-ups after it, so no config ever points at a
credential that was not created, and a failed transaction deletes what it made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.ids import uuid7
from plugboard_servicekit import outbox
from plugboard_servicekit.errors import Conflict, Invalid, NotFound

from connector_registry import events
from connector_registry import repository as repo
from connector_registry.domain.schemes import SchemeModel, SchemeType, stored_form
from connector_registry.models import ConnectorIn, ConnectorPatch
from connector_registry.repository import ConfigRow, ConnectorWrite
from connector_registry.secret_rules import SecretPlan, plan_secret
from connector_registry.secrets import SecretStore


def not_found() -> NotFound:
    return NotFound("No such connector.")


def name_taken() -> Conflict:
    return Conflict("A connector with this name exists in the organisation.")


@dataclass(frozen=True, slots=True)
class ConnectorView:
    row: Any
    versions: list[Any]
    configs: list[ConfigRow]


READ_CACHE_SIZE = 2048


class ConnectorService:
    def __init__(self, pool: asyncpg.Pool, secrets: SecretStore) -> None:
        self.pool = pool
        self.secrets = secrets
        self._rendered: dict[tuple[str, UUID], tuple[datetime, bytes]] = {}

    async def get_rendered(
        self, org: str, cid: UUID, render: Callable[[ConnectorView], bytes]
    ) -> bytes:
        """The served JSON of a connector, rendered again only when ``updated_at`` moved
        (every change to it or its children moves it): one indexed lookup per hit."""
        key = (org, cid)
        cached = self._rendered.get(key)
        if cached is not None and await repo.updated_at(self.pool, org, cid) == cached[0]:
            return cached[1]
        view = await self.get(org, cid)
        body = render(view)
        if len(self._rendered) >= READ_CACHE_SIZE:
            self._rendered.pop(next(iter(self._rendered)))
        self._rendered[key] = (view.row["updated_at"], body)
        return body

    async def _views(self, org: str, rows: Sequence[Any]) -> list[ConnectorView]:
        ids = [row["id"] for row in rows]
        versions = await repo.versions_of(self.pool, org, ids) if ids else []
        configs = await repo.configs_of(self.pool, org, ids) if ids else []
        return [
            ConnectorView(
                row,
                [v for v in versions if v["connector_id"] == row["id"]],
                [c for c in configs if c.connector_id == row["id"]],
            )
            for row in rows
        ]

    async def get(self, org: str, cid: UUID) -> ConnectorView:
        row = await repo.get_connector_view(self.pool, org, cid)
        if row is None:
            raise not_found()
        versions = [_version(v) for v in row["versions_json"]]
        configs = [ConfigRow.of(_config(c)) for c in row["configs_json"]]
        return ConnectorView(row, versions, configs)

    async def list(
        self, org: str, after: UUID | None, filters: tuple[str | None, ...], limit: int
    ) -> tuple[list[ConnectorView], UUID | None]:
        rows = await repo.list_connectors(self.pool, org, after, filters, limit + 1)
        following = rows[limit - 1]["id"] if len(rows) > limit else None
        return await self._views(org, rows[:limit]), following

    async def create(
        self, org: str, body: ConnectorIn, provider: str | None = None
    ) -> ConnectorView:
        _distinct_ids(body.auth_scheme_configs)
        cid = uuid7()
        plans = [
            await plan_secret(self.secrets, org, f"{body.name} / {s.id}", s, None)
            for s in body.auth_scheme_configs
        ]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await _insert(conn, org, cid, _write(body, provider))
                await outbox.add(conn, events.connector_state("created", org, row))
                for scheme, plan in zip(body.auth_scheme_configs, plans, strict=True):
                    await _upsert_config(conn, org, cid, str(scheme.id), scheme, plan)
        except BaseException:
            await self._undo(org, plans)
            raise
        return await self.get(org, cid)

    async def _undo(self, org: str, plans: Sequence[SecretPlan]) -> None:
        for plan in plans:
            if plan.created is not None:
                await self.secrets.delete(org, plan.created)

    async def patch(self, org: str, cid: UUID, patch: ConnectorPatch) -> ConnectorView:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await repo.get_connector(conn, org, cid, lock=True)
            if current is None:
                raise not_found()
            write = _patched(current, patch)
            try:
                row = await repo.update_connector(conn, org, cid, write)
            except asyncpg.UniqueViolationError:
                raise name_taken() from None
            await outbox.add(conn, events.connector_state("updated", org, row))
        return await self.get(org, cid)

    async def delete(self, org: str, cid: UUID, *, force: bool) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.get_connector(conn, org, cid, lock=True)
            if row is None:
                raise not_found()
            in_use = await repo.count_usages(conn, org, cid)
            if in_use and not force:
                raise Conflict(
                    f"{in_use} connection(s) use this connector; pass force=true to delete it.",
                    connections=in_use,
                )
            configs = await repo.tombstone_all_configs(conn, org, cid)
            for config in configs:
                await outbox.add(conn, events.config_deleted(org, config))
            await outbox.add(conn, events.connector_deleted(org, row))
            await repo.forget_usages(conn, org, cid)
            await repo.delete_connector(conn, org, cid)
        for config in configs:
            if config.client_secret_credential_id is not None:
                await self.secrets.delete(org, config.client_secret_credential_id)

    # --- auth scheme configs ---------------------------------------------------------

    async def put_config(
        self, org: str, cid: UUID, config_id: str, scheme: SchemeModel
    ) -> tuple[ConfigRow, bool]:
        """(row, created); the body's id, if any, must be the path's."""
        if scheme.id is not None and scheme.id != config_id:
            raise Invalid("The body's id must be the path's.", errors=[_field("id", "≠ path")])
        connector = await repo.get_connector(self.pool, org, cid)
        if connector is None:
            raise not_found()
        current = await self._current(org, cid, config_id)
        stored = current.client_secret_credential_id if current and not current.deleted else None
        label = f"{connector['name']} / {config_id}"
        plan = await plan_secret(self.secrets, org, label, scheme, stored)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if await repo.get_connector(conn, org, cid, lock=True) is None:
                    raise not_found()
                row = await _upsert_config(conn, org, cid, config_id, scheme, plan)
        except BaseException:
            await self._undo(org, [plan])
            raise
        for obsolete in plan.obsolete:
            await self.secrets.delete(org, obsolete)
        return row, current is None or current.deleted

    async def _current(self, org: str, cid: UUID, config_id: str) -> ConfigRow | None:
        async with self.pool.acquire() as conn:
            return await repo.lock_config(conn, org, cid, config_id)

    async def get_config(self, org: str, cid: UUID, config_id: str) -> tuple[ConfigRow, bool]:
        """(row, the connector has a certificate config)."""
        configs = await repo.configs_of(self.pool, org, [cid])
        for config in configs:
            if config.id == config_id:
                return config, has_certificate(configs)
        raise NotFound("No such auth scheme config.")

    async def delete_config(self, org: str, cid: UUID, config_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await repo.get_connector(conn, org, cid, lock=True) is None:
                raise not_found()
            row = await repo.tombstone_config(conn, org, cid, config_id)
            if row is None:
                raise NotFound("No such auth scheme config.")
            await repo.mark_changed(conn, org, cid)
            await outbox.add(conn, events.config_deleted(org, row))
        if row.client_secret_credential_id is not None:
            await self.secrets.delete(org, row.client_secret_credential_id)


def has_certificate(configs: Sequence[ConfigRow]) -> bool:
    return any(config.scheme_type == SchemeType.CERTIFICATE.value for config in configs)


def _field(name: str, message: str) -> Any:
    from plugboard_servicekit.errors import FieldError

    return FieldError(f"body.{name}", message)


def _distinct_ids(schemes: Sequence[SchemeModel]) -> None:
    ids = [scheme.id for scheme in schemes]
    if None in ids or len(set(ids)) != len(ids):
        message = "every auth scheme config needs an id, unique in the connector"
        raise Invalid(message, errors=[_field("authSchemeConfigs", message)])


async def _insert(conn: Any, org: str, cid: UUID, write: ConnectorWrite) -> Any:
    try:
        async with conn.transaction():
            return await repo.insert_connector(conn, org, cid, write)
    except asyncpg.UniqueViolationError:
        raise name_taken() from None


async def _upsert_config(
    conn: Any, org: str, cid: UUID, config_id: str, scheme: SchemeModel, plan: SecretPlan
) -> ConfigRow:
    stored = stored_form(scheme)
    stored["id"] = config_id
    grant = stored.get("grant")
    if isinstance(grant, dict):
        grant.pop("credentialId", None)
        grant.pop("organisationId", None)
    values = (scheme.scheme_type.value, stored, plan.credential_id)
    row = await repo.upsert_config(conn, org, cid, config_id, values)
    await repo.mark_changed(conn, org, cid)
    await outbox.add(conn, events.config_upserted(org, row))
    return row


def _write(body: ConnectorIn, provider: str | None) -> ConnectorWrite:
    return ConnectorWrite(
        name=body.name, protocol=body.protocol.value, base_url=body.base_url,
        dataset_id=body.dataset_id, documentation_url=body.documentation_url,
        icon_url=body.icon_url, tags=list(body.tags), categories=list(body.categories),
        connection_variables=[v.model_dump() for v in body.connection_variables],
        provider=provider,
    )  # fmt: skip


def _patched(current: Any, patch: ConnectorPatch) -> ConnectorWrite:
    """The current row with the patch's fields applied (absent: unchanged; null: cleared)."""
    given = patch.model_fields_set
    values = {name: current[name] for name in ("name", "base_url", "dataset_id",
              "documentation_url", "icon_url", "tags", "categories")}  # fmt: skip
    values["connection_variables"] = current["connection_variables"]
    for name in given:
        value = getattr(patch, name)
        if name == "connection_variables" and value is not None:
            value = [v.model_dump() for v in value]
        values[name] = value if value is not None or name not in ("tags", "categories") else []
    if values["name"] is None:
        raise Invalid("name cannot be cleared", errors=[_field("name", "cannot be null")])
    if values["connection_variables"] is None:
        values["connection_variables"] = []
    protocol = current["protocol"]
    if (protocol == "http") == (values["dataset_id"] is not None):
        message = "datasetId is for bigquery connectors only" if protocol == "http" else "required"
        raise Invalid(message, errors=[_field("datasetId", message)])
    return ConnectorWrite(protocol=protocol, provider=current["provider"], **values)


def _version(raw: dict[str, Any]) -> dict[str, Any]:
    """A version from the view's JSON (ids and times as text) in the row's Python types."""
    return {
        **raw,
        "id": UUID(raw["id"]),
        "connector_id": UUID(raw["connector_id"]),
        **{key: _time(raw[key]) for key in ("published_at", "created_at", "updated_at")},
    }


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    secret = raw["client_secret_credential_id"]
    return {
        **raw,
        "connector_id": UUID(raw["connector_id"]),
        "client_secret_credential_id": UUID(secret) if secret else None,
        **{key: _time(raw[key]) for key in ("deleted_at", "created_at", "updated_at")},
    }


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
