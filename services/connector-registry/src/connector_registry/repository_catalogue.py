"""SQL of an org's own catalogue entries and of provider apps (same rules as ``repository``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from plugboard_servicekit.db import Connection

from connector_registry.repository import Executor

SELECT_PROVIDER = "SELECT entry FROM providers WHERE org_id = $1 AND name = $2"
LIST_PROVIDERS = """
SELECT entry FROM providers
WHERE org_id = $1 AND ($2::text IS NULL OR $2 = ANY (auth_types))
  AND ($3::text IS NULL OR name ILIKE $3 OR display_name ILIKE $3)
ORDER BY name"""
INSERT_PROVIDER = """
INSERT INTO providers (org_id, name, display_name, auth_types, entry)
VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (org_id, name) DO NOTHING RETURNING name"""
UPSERT_PROVIDERS = """
INSERT INTO providers (org_id, name, display_name, auth_types, entry)
SELECT $1, e.name, e.display_name, string_to_array(e.auth_types, ','), e.entry
FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[])
     AS e (name, display_name, auth_types, entry)
ON CONFLICT (org_id, name) DO UPDATE SET display_name = EXCLUDED.display_name,
    auth_types = EXCLUDED.auth_types, entry = EXCLUDED.entry, updated_at = now()
RETURNING (xmax = 0) AS inserted"""


async def get_provider(db: Executor, org: str, name: str) -> dict[str, Any] | None:
    return await db.fetchval(SELECT_PROVIDER, org, name)


async def list_providers(
    db: Executor, org: str, auth_type: str | None, pattern: str | None
) -> list[dict[str, Any]]:
    return [r["entry"] for r in await db.fetch(LIST_PROVIDERS, org, auth_type, pattern)]


async def insert_provider(
    conn: Connection, org: str, entry: dict[str, Any], types: list[str]
) -> bool:
    name = await conn.fetchval(
        INSERT_PROVIDER, org, entry["name"], entry["displayName"], types, entry
    )
    return name is not None


async def upsert_providers(
    conn: Connection, org: str, entries: Sequence[tuple[dict[str, Any], list[str]]]
) -> tuple[int, int]:
    """(inserted, updated) for many entries in one statement."""
    names = [entry["name"] for entry, _ in entries]
    titles = [entry["displayName"] for entry, _ in entries]
    types = [",".join(kinds) for _, kinds in entries]
    bodies = [entry for entry, _ in entries]
    rows = await conn.fetch(UPSERT_PROVIDERS, org, names, titles, types, bodies)
    inserted = sum(1 for r in rows if r["inserted"])
    return inserted, len(rows) - inserted


# --- provider apps ------------------------------------------------------------------------

APP_COLUMNS = (
    "id, org_id, provider, client_id, client_secret_credential_id, scopes, external_ref, "
    "version, created_at, updated_at"
)
INSERT_APP = f"""
INSERT INTO provider_apps (org_id, id, provider, client_id, client_secret_credential_id,
                           scopes, external_ref)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {APP_COLUMNS}"""
UPDATE_APP = f"""
UPDATE provider_apps SET provider = $3, client_id = $4, client_secret_credential_id = $5,
       scopes = $6, external_ref = $7, version = version + 1, updated_at = now()
WHERE org_id = $1 AND id = $2 RETURNING {APP_COLUMNS}"""
SELECT_APP = f"SELECT {APP_COLUMNS} FROM provider_apps WHERE org_id = $1 AND id = $2"
LOCK_APP = SELECT_APP + " FOR UPDATE"
DELETE_APP = f"DELETE FROM provider_apps WHERE org_id = $1 AND id = $2 RETURNING {APP_COLUMNS}"
LIST_APPS = f"""
SELECT {APP_COLUMNS} FROM provider_apps
WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::text IS NULL OR provider = $3)
ORDER BY id LIMIT $4"""


async def insert_app(conn: Connection, org: str, app_id: UUID, values: tuple[Any, ...]) -> Any:
    return await conn.fetchrow(INSERT_APP, org, app_id, *values)


async def update_app(conn: Connection, org: str, app_id: UUID, values: tuple[Any, ...]) -> Any:
    return await conn.fetchrow(UPDATE_APP, org, app_id, *values)


async def get_app(db: Executor, org: str, app_id: UUID, *, lock: bool = False) -> Any:
    return await db.fetchrow(LOCK_APP if lock else SELECT_APP, org, app_id)


async def delete_app(conn: Connection, org: str, app_id: UUID) -> Any:
    return await conn.fetchrow(DELETE_APP, org, app_id)


async def list_apps(
    db: Executor, org: str, after: UUID | None, provider: str | None, limit: int
) -> list[Any]:
    return await db.fetch(LIST_APPS, org, after, provider, limit)
