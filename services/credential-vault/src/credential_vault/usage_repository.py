"""SQL of usages: which connections (installation's) use which credentials.

Kept from ``connection.*`` events by ``consumers``; read with each credential.
Same shape as ``repository``: one named statement each, arguments built beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from plugboard_servicekit.db import Connection

from credential_vault.repository import Executor


@dataclass(frozen=True, slots=True)
class UsageRow:
    credential_id: UUID
    connection_id: UUID
    name: str
    connector_id: UUID | None
    provider: str | None
    created_at: datetime
    updated_at: datetime


USAGES_OF = """
SELECT credential_id, connection_id, name, connector_id, provider, created_at, updated_at
FROM credential_usages WHERE credential_id = ANY($1::uuid[])
ORDER BY created_at, connection_id
"""


async def usages_of(conn: Executor, credential_ids: Sequence[UUID]) -> dict[UUID, list[UsageRow]]:
    records = await conn.fetch(USAGES_OF, list(credential_ids))
    found: dict[UUID, list[UsageRow]] = {cid: [] for cid in credential_ids}
    for record in records:
        found[record["credential_id"]].append(UsageRow(**dict(record)))
    return found


@dataclass(frozen=True, slots=True)
class ConnectionUsage:
    """A connection and the complete set of credentials it uses (from its newest event)."""

    org_id: str
    connection_id: UUID
    name: str
    connector_id: UUID | None
    provider: str | None
    at: datetime
    credential_ids: list[UUID]


REPLACE_USAGES = """
WITH dropped AS (
    DELETE FROM credential_usages
    WHERE org_id = $1 AND connection_id = $2 AND NOT (credential_id = ANY($7::uuid[]))
)
INSERT INTO credential_usages (credential_id, connection_id, org_id, name, connector_id,
    provider, created_at, updated_at)
SELECT c.id, $2, $1, $3, $4, $5, $6, $6 FROM credentials c
WHERE c.org_id = $1 AND c.id = ANY($7::uuid[])
ON CONFLICT (credential_id, connection_id) DO UPDATE SET name = excluded.name,
    connector_id = excluded.connector_id, provider = excluded.provider,
    updated_at = excluded.updated_at
"""


async def replace_usages(conn: Connection, usage: ConnectionUsage) -> None:
    """The connection uses exactly these credentials now (unknown or foreign ids skipped)."""
    args = (
        usage.org_id,
        usage.connection_id,
        usage.name,
        usage.connector_id,
        usage.provider,
        usage.at,
        usage.credential_ids,
    )
    await conn.execute(REPLACE_USAGES, *args)


DELETE_USAGES = "DELETE FROM credential_usages WHERE org_id = $1 AND connection_id = $2"


async def delete_usages(conn: Connection, org_id: str, connection_id: UUID) -> None:
    await conn.execute(DELETE_USAGES, org_id, connection_id)
