"""SQL of connections, installations and their configs (asyncpg; see ``repository``).

Reads join what the wire shape shows (group, consumer, current config) in the same
statement, so a get is one round trip. Health changes are in ``repository_health``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from installation.repository import TENANT, Executor, Row, _row

# ------------------------------------------------------------------ connections

_CONNECTION = """
c.id, c.org_id, c.project_id, c.provider, c.connector_id, c.provider_app_id, c.group_ref,
c.consumer_ref, c.provider_workspace_ref, c.provider_consumer_ref, c.provider_metadata,
c.auth_type, c.status, c.credential_id, c.source_credential_id, c.version, c.created_at,
c.updated_at,
g.group_name, g.created_at AS group_created_at, g.updated_at AS group_updated_at,
k.consumer_name, k.created_at AS consumer_created_at, k.updated_at AS consumer_updated_at
"""
_CONNECTION_FROM = """
FROM connections c
JOIN groups g ON g.project_id = c.project_id AND g.group_ref = c.group_ref
JOIN consumers k ON k.project_id = c.project_id AND k.consumer_ref = c.consumer_ref
"""
INSERT_CONNECTION = """
INSERT INTO connections (org_id, id, project_id, provider, connector_id, provider_app_id,
    group_ref, consumer_ref, provider_workspace_ref, provider_consumer_ref, provider_metadata,
    auth_type, status, credential_id, session_id, source_credential_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (session_id) DO NOTHING RETURNING id
"""
GET_CONNECTION = f"""
SELECT {_CONNECTION} {_CONNECTION_FROM} WHERE c.{TENANT} AND c.project_id = $2 AND c.id = $3
"""
LIST_CONNECTIONS = f"""
SELECT {_CONNECTION} {_CONNECTION_FROM}
WHERE c.{TENANT} AND c.project_id = $2
  AND ($3::text IS NULL OR c.provider = $3) AND ($4::text IS NULL OR c.group_ref = $4)
  AND ($5::text IS NULL OR c.consumer_ref = $5)
  AND (c.created_at, c.id) > ($6::timestamptz, $7::uuid)
ORDER BY c.created_at, c.id LIMIT $8
"""
DELETE_CONNECTION = f"""
DELETE FROM connections c WHERE c.{TENANT} AND c.project_id = $2 AND c.id = $3
RETURNING c.id, c.provider, c.connector_id, c.group_ref, c.credential_id,
    c.source_credential_id, c.version + 1 AS version
"""
CONNECTION_IN_USE = "SELECT 1 FROM installations WHERE connection_id = $1 LIMIT 1"


async def insert_connection(conn: Executor, org: str, values: Sequence[Any]) -> UUID | None:
    """``values`` in column order after org; None when the session already made one."""
    return await conn.fetchval(INSERT_CONNECTION, org, *values)


async def get_connection(conn: Executor, org: str, project: UUID, cid: UUID) -> Row | None:
    return _row(await conn.fetchrow(GET_CONNECTION, org, project, cid))


async def list_connections(
    conn: Executor,
    org: str,
    project: UUID,
    filters: Sequence[str | None],
    after: Sequence[Any],
    limit: int,
) -> list[Row]:
    """``filters``: provider, groupRef, consumerRef; ``after``: (created_at, id) cursor."""
    records = await conn.fetch(LIST_CONNECTIONS, org, project, *filters, *after, limit)
    return [dict(r) for r in records]


async def delete_connection(conn: Executor, org: str, project: UUID, cid: UUID) -> Row | None:
    return _row(await conn.fetchrow(DELETE_CONNECTION, org, project, cid))


async def connection_in_use(conn: Executor, cid: UUID) -> bool:
    return await conn.fetchval(CONNECTION_IN_USE, cid) is not None


# ------------------------------------------------------------------ installations

_INSTALLATION = """
i.id, i.org_id, i.project_id, i.integration_id, i.connection_id, i.group_ref, i.consumer_ref,
i.health_status, i.health_reason, i.created_by, i.version, i.created_at, i.updated_at,
g.group_name, g.created_at AS group_created_at, g.updated_at AS group_updated_at,
cf.id AS config_id, cf.revision_id, cf.content AS config_content,
cf.created_by AS config_created_by, cf.created_at AS config_created_at
"""
_INSTALLATION_FROM = """
FROM installations i
JOIN groups g ON g.project_id = i.project_id AND g.group_ref = i.group_ref
JOIN LATERAL (SELECT * FROM installation_configs x WHERE x.installation_id = i.id
              ORDER BY x.created_at DESC LIMIT 1) cf ON true
"""
INSERT_INSTALLATION = """
WITH inst AS (
    INSERT INTO installations (org_id, id, project_id, integration_id, connection_id, group_ref,
        consumer_ref, created_by, health_status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12)
    ON CONFLICT (integration_id, group_ref) DO NOTHING RETURNING id
)
INSERT INTO installation_configs (id, installation_id, revision_id, content, created_by)
SELECT $9, id, $10, $11, $8 FROM inst RETURNING installation_id
"""
GET_INSTALLATION = f"""
SELECT {_INSTALLATION} {_INSTALLATION_FROM}
WHERE i.{TENANT} AND i.project_id = $2 AND i.integration_id = $3 AND i.id = $4
"""
LIST_INSTALLATIONS = f"""
SELECT {_INSTALLATION} {_INSTALLATION_FROM}
WHERE i.{TENANT} AND i.project_id = $2 AND i.integration_id = $3
  AND ($4::text IS NULL OR i.group_ref = $4)
  AND (i.created_at, i.id) > ($5::timestamptz, $6::uuid)
ORDER BY i.created_at, i.id LIMIT $7
"""
NEW_CONFIG = f"""
WITH inst AS (
    UPDATE installations i SET version = version + 1, updated_at = now()
    WHERE i.{TENANT} AND i.project_id = $2 AND i.integration_id = $3 AND i.id = $4
    RETURNING i.id
)
INSERT INTO installation_configs (id, installation_id, revision_id, content, created_by)
SELECT $5, id, $6, $7, $8 FROM inst RETURNING installation_id
"""
DELETE_INSTALLATION = f"""
DELETE FROM installations i
WHERE i.{TENANT} AND i.project_id = $2 AND i.integration_id = $3 AND i.id = $4
RETURNING i.id, i.connection_id, i.group_ref, i.consumer_ref, i.version + 1 AS version
"""


async def insert_installation(conn: Executor, org: str, values: Sequence[Any]) -> UUID | None:
    """``values``: id, project, integration, connection, group, consumer, created by,
    config id, revision id, content, health. None when the group already installed it."""
    return await conn.fetchval(INSERT_INSTALLATION, org, *values)


async def get_installation(
    conn: Executor, org: str, project: UUID, integration: UUID, iid: UUID
) -> Row | None:
    return _row(await conn.fetchrow(GET_INSTALLATION, org, project, integration, iid))


async def list_installations(
    conn: Executor,
    org: str,
    project: UUID,
    integration: UUID,
    group_ref: str | None,
    after: Sequence[Any],
    limit: int,
) -> list[Row]:
    records = await conn.fetch(
        LIST_INSTALLATIONS, org, project, integration, group_ref, *after, limit
    )
    return [dict(r) for r in records]


async def new_config(
    conn: Executor, org: str, where: Sequence[UUID], values: Sequence[Any]
) -> UUID | None:
    """``where``: project, integration, installation; ``values``: config id, revision id,
    content, created by. None when no such installation."""
    return await conn.fetchval(NEW_CONFIG, org, *where, *values)


async def delete_installation(conn: Executor, org: str, where: Sequence[UUID]) -> Row | None:
    return _row(await conn.fetchrow(DELETE_INSTALLATION, org, *where))
