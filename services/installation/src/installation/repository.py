"""SQL of orgs, projects, builders, roles, API keys, integrations, revisions, groups
and consumers (asyncpg). Connections, installations and health: ``repository_connections``.

One named constant per statement, its argument tuple built at the call. Every
tenant statement filters on ``org_id`` (``TENANT``): an id of another org finds
nothing, which the use cases answer with 404. Functions take a connection or the
pool, so the caller decides the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_servicekit.db import Connection

Executor = Connection | asyncpg.Pool
Row = dict[str, Any]
TENANT = "org_id = $1"
"""The one tenant predicate: ``$1`` is always the caller's org."""


def _row(record: asyncpg.Record | None) -> Row | None:
    return None if record is None else dict(record)


# ------------------------------------------------------------------ orgs, builders

ENSURE_ORG = """
INSERT INTO orgs (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING RETURNING id
"""
ENSURE_BUILDER = """
INSERT INTO builders (id, org_id) VALUES ($2, $1) ON CONFLICT (org_id, id) DO NOTHING
"""
BIND_ROLE = """
INSERT INTO role_bindings (org_id, project_id, principal_type, principal_id, role)
VALUES ($1, $2, 'builder', $3, $4) ON CONFLICT DO NOTHING
"""
GET_ORG = "SELECT id, name, created_at, updated_at FROM orgs WHERE id = $1"
GET_BUILDER = f"SELECT id, org_id, created_at FROM builders WHERE {TENANT} AND id = $2"
ROLES_OF = f"""
SELECT r.project_id, r.principal_type, r.principal_id, r.role,
       p.name, p.app_name, p.created_at, p.updated_at
FROM role_bindings r LEFT JOIN projects p ON p.id = r.project_id
WHERE r.{TENANT} AND r.principal_type = 'builder' AND r.principal_id = $2
ORDER BY r.created_at
"""


async def ensure_builder(conn: Connection, org: str, sub: str) -> None:
    """The org and the builder on first sight; the org's first builder is its admin."""
    created = await conn.fetchval(ENSURE_ORG, org)
    await conn.execute(ENSURE_BUILDER, org, sub)
    if created is not None:
        await conn.execute(BIND_ROLE, org, None, sub, "admin")


async def bind_role(conn: Executor, org: str, project: UUID | None, sub: str, role: str) -> None:
    await conn.execute(BIND_ROLE, org, project, sub, role)


async def get_org(conn: Executor, org: str) -> Row | None:
    return _row(await conn.fetchrow(GET_ORG, org))


async def get_builder(conn: Executor, org: str, sub: str) -> Row | None:
    return _row(await conn.fetchrow(GET_BUILDER, org, sub))


async def roles_of(conn: Executor, org: str, sub: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(ROLES_OF, org, sub)]


# ------------------------------------------------------------------ projects

_PROJECT = "id, org_id, name, app_name, created_at, updated_at"
INSERT_PROJECT = f"""
INSERT INTO projects (org_id, id, name, app_name) VALUES ($1, $2, $3, $4)
ON CONFLICT (org_id, name) DO NOTHING RETURNING {_PROJECT}
"""
GET_PROJECT = f"SELECT {_PROJECT} FROM projects WHERE {TENANT} AND id = $2"
LIST_PROJECTS = f"SELECT {_PROJECT} FROM projects WHERE {TENANT} ORDER BY created_at, id"


async def insert_project(conn: Executor, org: str, pid: UUID, name: str, app: str) -> Row | None:
    """None when the org already has a project of that name."""
    return _row(await conn.fetchrow(INSERT_PROJECT, org, pid, name, app))


async def get_project(conn: Executor, org: str, project: UUID) -> Row | None:
    return _row(await conn.fetchrow(GET_PROJECT, org, project))


async def list_projects(conn: Executor, org: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_PROJECTS, org)]


# ------------------------------------------------------------------ API keys

_KEY = "id, org_id, project_id, label, scopes, active, created_by, created_at, revoked_at"
INSERT_KEY = f"""
INSERT INTO api_keys (org_id, id, project_id, label, scopes, key_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_KEY}
"""
LIST_KEYS = f"SELECT {_KEY} FROM api_keys WHERE {TENANT} AND project_id = $2 ORDER BY created_at"
REVOKE_KEY = f"""
WITH before AS (
    SELECT id, active FROM api_keys WHERE {TENANT} AND project_id = $2 AND id = $3 FOR UPDATE
)
UPDATE api_keys k SET active = false, revoked_at = COALESCE(k.revoked_at, now())
FROM before WHERE k.id = before.id
RETURNING k.id, k.project_id, k.revoked_at, before.active AS was_active
"""
KEY_BY_HASH = f"SELECT {_KEY} FROM api_keys WHERE key_hash = $1 AND active"
KEY_ACTIVE = "SELECT active FROM api_keys WHERE id = $1 AND project_id = $2"


async def insert_key(conn: Executor, org: str, values: Sequence[Any]) -> Row:
    """``values``: id, project id, label, scopes, key hash, created by."""
    record = await conn.fetchrow(INSERT_KEY, org, *values)
    assert record is not None
    return dict(record)


async def list_keys(conn: Executor, org: str, project: UUID) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_KEYS, org, project)]


async def revoke_key(conn: Executor, org: str, project: UUID, key_id: UUID) -> Row | None:
    """The revoked key (``revoked_at``, ``was_active``: False for a repeated revoke),
    or None when the project has no such key."""
    return _row(await conn.fetchrow(REVOKE_KEY, org, project, key_id))


async def key_by_hash(conn: Executor, digest: bytes) -> Row | None:
    """Not tenant-scoped: the key itself is what names the tenant."""
    return _row(await conn.fetchrow(KEY_BY_HASH, digest))


async def key_active(conn: Executor, project: UUID, key_id: UUID) -> bool:
    return bool(await conn.fetchval(KEY_ACTIVE, key_id, project))


# ------------------------------------------------------------------ integrations

_INTEGRATION = "id, org_id, project_id, name, provider, connector_id, latest_revision_id, created_at, updated_at"  # noqa: E501
INSERT_INTEGRATION = f"""
INSERT INTO integrations (org_id, id, project_id, name, provider, connector_id)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id, name) DO NOTHING RETURNING {_INTEGRATION}
"""
GET_INTEGRATION = f"""
SELECT {_INTEGRATION} FROM integrations WHERE {TENANT} AND project_id = $2 AND id = $3
"""
LIST_INTEGRATIONS = f"""
SELECT {_INTEGRATION} FROM integrations WHERE {TENANT} AND project_id = $2 ORDER BY created_at, id
"""
INSERT_REVISION = f"""
WITH rev AS (
    INSERT INTO revisions (org_id, id, integration_id, spec_version, content)
    VALUES ($1, $2, $3, $4, $5) RETURNING id, integration_id, spec_version, content, created_at
), latest AS (
    UPDATE integrations SET latest_revision_id = $2, updated_at = now()
    WHERE {TENANT} AND id = $3
)
SELECT * FROM rev
"""
GET_REVISION = f"""
SELECT id, integration_id, spec_version, content, created_at FROM revisions
WHERE {TENANT} AND integration_id = $2 AND id = $3
"""


async def insert_integration(conn: Executor, org: str, values: Sequence[Any]) -> Row | None:
    """``values``: id, project, name, provider, connector id; None when the name is taken."""
    return _row(await conn.fetchrow(INSERT_INTEGRATION, org, *values))


async def get_integration(conn: Executor, org: str, project: UUID, iid: UUID) -> Row | None:
    return _row(await conn.fetchrow(GET_INTEGRATION, org, project, iid))


async def list_integrations(conn: Executor, org: str, project: UUID) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_INTEGRATIONS, org, project)]


async def insert_revision(conn: Executor, org: str, values: Sequence[Any]) -> Row:
    """``values``: id, integration id, spec version, content; becomes the latest."""
    record = await conn.fetchrow(INSERT_REVISION, org, *values)
    assert record is not None
    return dict(record)


async def get_revision(conn: Executor, org: str, integration: UUID, rid: UUID) -> Row | None:
    return _row(await conn.fetchrow(GET_REVISION, org, integration, rid))


# ------------------------------------------------------------------ groups, consumers

UPSERT_GROUP = """
INSERT INTO groups (org_id, project_id, group_ref, group_name) VALUES ($1, $2, $3, $4)
ON CONFLICT (project_id, group_ref) DO UPDATE SET group_name = EXCLUDED.group_name,
    updated_at = now() WHERE groups.group_name IS DISTINCT FROM EXCLUDED.group_name
"""
UPSERT_CONSUMER = """
INSERT INTO consumers (org_id, project_id, consumer_ref, consumer_name) VALUES ($1, $2, $3, $4)
ON CONFLICT (project_id, consumer_ref) DO UPDATE SET consumer_name = EXCLUDED.consumer_name,
    updated_at = now() WHERE consumers.consumer_name IS DISTINCT FROM EXCLUDED.consumer_name
"""
GET_GROUP = f"""
SELECT project_id, group_ref, group_name, created_at, updated_at FROM groups
WHERE {TENANT} AND project_id = $2 AND group_ref = $3
"""
LIST_GROUPS = f"""
SELECT project_id, group_ref, group_name, created_at, updated_at FROM groups
WHERE {TENANT} AND project_id = $2 ORDER BY created_at, group_ref
"""
GET_CONSUMER = f"""
SELECT project_id, consumer_ref, consumer_name, created_at, updated_at FROM consumers
WHERE {TENANT} AND project_id = $2 AND consumer_ref = $3
"""
LIST_CONSUMERS = f"""
SELECT project_id, consumer_ref, consumer_name, created_at, updated_at FROM consumers
WHERE {TENANT} AND project_id = $2 ORDER BY created_at, consumer_ref
"""


async def upsert_group(conn: Executor, org: str, project: UUID, ref: str, name: str) -> None:
    await conn.execute(UPSERT_GROUP, org, project, ref, name)


async def upsert_consumer(conn: Executor, org: str, project: UUID, ref: str, name: str) -> None:
    await conn.execute(UPSERT_CONSUMER, org, project, ref, name)


async def get_group(conn: Executor, org: str, project: UUID, ref: str) -> Row | None:
    return _row(await conn.fetchrow(GET_GROUP, org, project, ref))


async def list_groups(conn: Executor, org: str, project: UUID) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_GROUPS, org, project)]


async def get_consumer(conn: Executor, org: str, project: UUID, ref: str) -> Row | None:
    return _row(await conn.fetchrow(GET_CONSUMER, org, project, ref))


async def list_consumers(conn: Executor, org: str, project: UUID) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_CONSUMERS, org, project)]
