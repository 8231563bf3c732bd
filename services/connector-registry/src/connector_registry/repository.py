"""SQL of connectors, versions, auth scheme configs, org providers, provider apps and
usages (asyncpg, plain SQL). Functions take a connection so the use case decides the
transaction; one named constant per statement, its arguments built next to the call,
and one tenant predicate (``org_id = $1``) first in every statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_servicekit.db import Connection

Executor = Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class ConnectorWrite:
    """The writable columns, in statement order ($3..$12)."""

    name: str
    protocol: str
    base_url: str | None
    dataset_id: str | None
    documentation_url: str | None
    icon_url: str | None
    tags: list[str]
    categories: list[str]
    connection_variables: list[dict[str, str]]
    provider: str | None

    def args(self) -> tuple[Any, ...]:
        return (
            self.name, self.protocol, self.base_url, self.dataset_id, self.documentation_url,
            self.icon_url, self.tags, self.categories, self.connection_variables,
            self.provider,
        )  # fmt: skip


NEXT_UPDATE = "greatest(updated_at + interval '1 microsecond', clock_timestamp())"
"""Strictly increasing per connector, and moved by every change to its children too
(Versori: updatedAt includes child resources): the read cache keys on it."""
CONNECTOR_COLUMNS = (
    "id, org_id, name, protocol, base_url, dataset_id, documentation_url, icon_url, tags, "
    "categories, connection_variables, provider, version, created_at, updated_at"
)
INSERT_CONNECTOR = f"""
INSERT INTO connectors (org_id, id, name, protocol, base_url, dataset_id, documentation_url,
                        icon_url, tags, categories, connection_variables, provider)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12)
RETURNING {CONNECTOR_COLUMNS}"""
UPDATE_CONNECTOR = f"""
UPDATE connectors SET name = $3, protocol = $4, base_url = $5, dataset_id = $6,
       documentation_url = $7, icon_url = $8, tags = $9, categories = $10,
       connection_variables = $11::jsonb, provider = $12, version = version + 1,
       updated_at = {NEXT_UPDATE}
WHERE org_id = $1 AND id = $2
RETURNING {CONNECTOR_COLUMNS}"""
TOUCH_CONNECTOR = f"""
UPDATE connectors SET version = version + 1, updated_at = {NEXT_UPDATE}
WHERE org_id = $1 AND id = $2 RETURNING {CONNECTOR_COLUMNS}"""
MARK_CHANGED = f"UPDATE connectors SET updated_at = {NEXT_UPDATE} WHERE org_id = $1 AND id = $2"
SELECT_UPDATED_AT = "SELECT updated_at FROM connectors WHERE org_id = $1 AND id = $2"
SELECT_CONNECTOR = f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE org_id = $1 AND id = $2"
LOCK_CONNECTOR = SELECT_CONNECTOR + " FOR UPDATE"
DELETE_CONNECTOR = "DELETE FROM connectors WHERE org_id = $1 AND id = $2"
LIST_CONNECTORS = f"""
SELECT {CONNECTOR_COLUMNS} FROM connectors
WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::text IS NULL OR name = $3)
  AND ($4::text IS NULL OR protocol = $4) AND ($5::text IS NULL OR $5 = ANY (tags))
ORDER BY id LIMIT $6"""


async def insert_connector(conn: Connection, org: str, cid: UUID, w: ConnectorWrite) -> Any:
    return await conn.fetchrow(INSERT_CONNECTOR, org, cid, *w.args())


async def update_connector(conn: Connection, org: str, cid: UUID, w: ConnectorWrite) -> Any:
    return await conn.fetchrow(UPDATE_CONNECTOR, org, cid, *w.args())


async def touch_connector(conn: Connection, org: str, cid: UUID) -> Any:
    return await conn.fetchrow(TOUCH_CONNECTOR, org, cid)


SELECT_CONNECTOR_VIEW = f"""
SELECT {CONNECTOR_COLUMNS},
  (SELECT coalesce(json_agg(json_build_object(
       'id', v.id, 'connector_id', v.connector_id, 'name', v.name,
       'description', v.description, 'is_default', v.is_default,
       'published_at', v.published_at, 'created_at', v.created_at, 'updated_at', v.updated_at)
       ORDER BY v.created_at, v.id), '[]')
   FROM connector_versions v WHERE v.org_id = $1 AND v.connector_id = c.id) AS versions_json,
  (SELECT coalesce(json_agg(json_build_object(
       'connector_id', a.connector_id, 'id', a.id, 'scheme_type', a.scheme_type,
       'config', a.config, 'client_secret_credential_id', a.client_secret_credential_id,
       'version', a.version, 'deleted_at', a.deleted_at, 'created_at', a.created_at,
       'updated_at', a.updated_at)
       ORDER BY a.position, a.created_at, a.id), '[]')
   FROM auth_scheme_configs a
   WHERE a.org_id = $1 AND a.connector_id = c.id AND a.deleted_at IS NULL) AS configs_json
FROM connectors c WHERE c.org_id = $1 AND c.id = $2"""


async def get_connector_view(db: Executor, org: str, cid: UUID) -> Any:
    """The connector with its versions and configs in one round trip (the hot read)."""
    return await db.fetchrow(SELECT_CONNECTOR_VIEW, org, cid)


async def mark_changed(conn: Connection, org: str, cid: UUID) -> None:
    await conn.execute(MARK_CHANGED, org, cid)


async def updated_at(db: Executor, org: str, cid: UUID) -> datetime | None:
    return await db.fetchval(SELECT_UPDATED_AT, org, cid)


async def get_connector(db: Executor, org: str, cid: UUID, *, lock: bool = False) -> Any:
    return await db.fetchrow(LOCK_CONNECTOR if lock else SELECT_CONNECTOR, org, cid)


async def delete_connector(conn: Connection, org: str, cid: UUID) -> None:
    await conn.execute(DELETE_CONNECTOR, org, cid)


async def list_connectors(
    db: Executor, org: str, after: UUID | None, filters: tuple[str | None, ...], limit: int
) -> list[Any]:
    name, protocol, tag = filters
    return await db.fetch(LIST_CONNECTORS, org, after, name, protocol, tag, limit)


# --- versions -----------------------------------------------------------------------

VERSION_COLUMNS = (
    "id, connector_id, name, description, is_default, published_at, created_at, updated_at"
)
INSERT_VERSION = f"""
INSERT INTO connector_versions (org_id, connector_id, id, name, description, is_default)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING {VERSION_COLUMNS}"""
SELECT_VERSIONS = f"""
SELECT {VERSION_COLUMNS} FROM connector_versions
WHERE org_id = $1 AND connector_id = ANY ($2::uuid[]) ORDER BY created_at, id"""
LOCK_VERSION = f"""
SELECT {VERSION_COLUMNS} FROM connector_versions
WHERE org_id = $1 AND connector_id = $2 AND id = $3 FOR UPDATE"""
UPDATE_VERSION = f"""
UPDATE connector_versions SET name = $4, description = $5, is_default = $6,
       published_at = $7, updated_at = now()
WHERE org_id = $1 AND connector_id = $2 AND id = $3 RETURNING {VERSION_COLUMNS}"""
CLEAR_DEFAULT = """
UPDATE connector_versions SET is_default = false, updated_at = now()
WHERE org_id = $1 AND connector_id = $2 AND is_default AND id <> $3"""
DELETE_VERSION = (
    "DELETE FROM connector_versions WHERE org_id = $1 AND connector_id = $2 AND id = $3"
)


async def insert_version(conn: Connection, org: str, cid: UUID, vid: UUID, values: tuple) -> Any:
    return await conn.fetchrow(INSERT_VERSION, org, cid, vid, *values)


async def versions_of(db: Executor, org: str, connector_ids: Sequence[UUID]) -> list[Any]:
    return await db.fetch(SELECT_VERSIONS, org, list(connector_ids))


async def lock_version(conn: Connection, org: str, cid: UUID, vid: UUID) -> Any:
    return await conn.fetchrow(LOCK_VERSION, org, cid, vid)


async def update_version(conn: Connection, org: str, cid: UUID, vid: UUID, values: tuple) -> Any:
    return await conn.fetchrow(UPDATE_VERSION, org, cid, vid, *values)


async def clear_default(conn: Connection, org: str, cid: UUID, keep: UUID) -> None:
    await conn.execute(CLEAR_DEFAULT, org, cid, keep)


async def delete_version(conn: Connection, org: str, cid: UUID, vid: UUID) -> None:
    await conn.execute(DELETE_VERSION, org, cid, vid)


# --- auth scheme configs --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigRow:
    connector_id: UUID
    id: str
    scheme_type: str
    config: dict[str, Any]
    client_secret_credential_id: UUID | None
    version: int
    deleted: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Any) -> ConfigRow:
        return cls(
            r["connector_id"], r["id"], r["scheme_type"], r["config"],
            r["client_secret_credential_id"], r["version"], r["deleted_at"] is not None,
            r["created_at"], r["updated_at"],
        )  # fmt: skip


CONFIG_COLUMNS = (
    "connector_id, id, scheme_type, config, client_secret_credential_id, version, deleted_at, "
    "created_at, updated_at"
)
SELECT_CONFIGS = f"""
SELECT {CONFIG_COLUMNS} FROM auth_scheme_configs
WHERE org_id = $1 AND connector_id = ANY ($2::uuid[]) AND deleted_at IS NULL
ORDER BY position, created_at, id"""
LOCK_CONFIG = f"""
SELECT {CONFIG_COLUMNS} FROM auth_scheme_configs
WHERE org_id = $1 AND connector_id = $2 AND id = $3 FOR UPDATE"""
UPSERT_CONFIG = f"""
INSERT INTO auth_scheme_configs (org_id, connector_id, id, scheme_type, config,
                                 client_secret_credential_id, position)
VALUES ($1, $2, $3, $4, $5::jsonb, $6,
        (SELECT count(*) FROM auth_scheme_configs WHERE org_id = $1 AND connector_id = $2))
ON CONFLICT (connector_id, id) DO UPDATE SET
    scheme_type = EXCLUDED.scheme_type, config = EXCLUDED.config,
    client_secret_credential_id = EXCLUDED.client_secret_credential_id,
    version = auth_scheme_configs.version + 1, deleted_at = NULL, updated_at = now()
WHERE auth_scheme_configs.org_id = $1
RETURNING {CONFIG_COLUMNS}"""
TOMBSTONE_CONFIG = f"""
UPDATE auth_scheme_configs SET deleted_at = now(), version = version + 1, updated_at = now()
WHERE org_id = $1 AND connector_id = $2 AND id = $3 AND deleted_at IS NULL
RETURNING {CONFIG_COLUMNS}"""
TOMBSTONE_ALL_CONFIGS = f"""
UPDATE auth_scheme_configs SET deleted_at = now(), version = version + 1, updated_at = now()
WHERE org_id = $1 AND connector_id = $2 AND deleted_at IS NULL RETURNING {CONFIG_COLUMNS}"""


async def configs_of(db: Executor, org: str, connector_ids: Sequence[UUID]) -> list[ConfigRow]:
    return [ConfigRow.of(r) for r in await db.fetch(SELECT_CONFIGS, org, list(connector_ids))]


async def lock_config(conn: Connection, org: str, cid: UUID, config_id: str) -> ConfigRow | None:
    record = await conn.fetchrow(LOCK_CONFIG, org, cid, config_id)
    return ConfigRow.of(record) if record else None


async def upsert_config(
    conn: Connection, org: str, cid: UUID, config_id: str, values: tuple[Any, ...]
) -> ConfigRow:
    scheme_type, config, secret_id = values
    record = await conn.fetchrow(UPSERT_CONFIG, org, cid, config_id, scheme_type, config, secret_id)
    return ConfigRow.of(record)


async def tombstone_config(conn: Connection, org: str, cid: UUID, config_id: str) -> Any:
    record = await conn.fetchrow(TOMBSTONE_CONFIG, org, cid, config_id)
    return ConfigRow.of(record) if record else None


async def tombstone_all_configs(conn: Connection, org: str, cid: UUID) -> list[ConfigRow]:
    return [ConfigRow.of(r) for r in await conn.fetch(TOMBSTONE_ALL_CONFIGS, org, cid)]


# --- usages (from connection events) -----------------------------------------------------

UPSERT_USAGE = """
INSERT INTO connector_usages (org_id, connection_id, connector_id) VALUES ($1, $2, $3)
ON CONFLICT (connection_id) DO UPDATE SET connector_id = EXCLUDED.connector_id
WHERE connector_usages.org_id = $1"""
DELETE_USAGE = "DELETE FROM connector_usages WHERE org_id = $1 AND connection_id = $2"
COUNT_USAGES = "SELECT count(*) FROM connector_usages WHERE org_id = $1 AND connector_id = $2"
DELETE_USAGES_OF = "DELETE FROM connector_usages WHERE org_id = $1 AND connector_id = $2"


async def set_usage(conn: Connection, org: str, connection_id: UUID, cid: UUID | None) -> None:
    if cid is None:
        await conn.execute(DELETE_USAGE, org, connection_id)
    else:
        await conn.execute(UPSERT_USAGE, org, connection_id, cid)


async def count_usages(conn: Connection, org: str, cid: UUID) -> int:
    return int(await conn.fetchval(COUNT_USAGES, org, cid) or 0)


async def forget_usages(conn: Connection, org: str, cid: UUID) -> None:
    await conn.execute(DELETE_USAGES_OF, org, cid)
