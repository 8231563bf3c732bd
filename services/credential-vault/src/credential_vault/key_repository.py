"""SQL of the key hierarchy: data keys per org, and the rows key rotation rewraps.

Kept apart from ``repository`` (credentials, usages, expiry) because only the
data-key helpers and the operator commands use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from plugboard_servicekit.db import Connection

from credential_vault.crypto import Sealed, WrappedDataKey
from credential_vault.repository import SECRET_FROM, Executor, SecretRow


async def newest_data_key(conn: Connection, org_id: str) -> WrappedDataKey | None:
    record = await conn.fetchrow(
        "SELECT version, kek_version, wrapped FROM data_keys WHERE org_id = $1"
        " ORDER BY version DESC LIMIT 1",
        org_id,
    )
    if record is None:
        return None
    return WrappedDataKey(org_id, record["version"], record["kek_version"], record["wrapped"])


async def insert_data_key(conn: Connection, key: WrappedDataKey) -> bool:
    """False when another transaction created this version first."""
    inserted = await conn.fetchval(
        "INSERT INTO data_keys (org_id, version, kek_version, wrapped) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true",
        key.org_id,
        key.version,
        key.kek_version,
        key.wrapped,
    )
    return bool(inserted)


async def stale_secrets(conn: Connection, below_kek: int, limit: int) -> list[SecretRow]:
    """Credentials sealed under a KEK older than ``below_kek``, row-locked for rewrap."""
    records = await conn.fetch(
        f"{SECRET_FROM} WHERE c.kek_version < $1 ORDER BY c.id LIMIT $2 FOR UPDATE OF c",
        below_kek,
        limit,
    )
    return [SecretRow.of(record) for record in records]


async def reseal(conn: Connection, resealed: Sequence[tuple[UUID, Sealed]]) -> None:
    """New ciphertext for unchanged data: same version, so no event and no audit row."""
    await conn.executemany(
        "UPDATE credentials SET dek_version = $2, kek_version = $3, ciphertext = $4 WHERE id = $1",
        [(cid, s.dek_version, s.kek_version, s.ciphertext) for cid, s in resealed],
    )


async def drop_unused_data_keys(conn: Connection, below_kek: int) -> int:
    """Delete data keys wrapped by KEKs older than ``below_kek`` that nothing references."""
    status = await conn.execute(
        "DELETE FROM data_keys d WHERE d.kek_version < $1 AND NOT EXISTS (SELECT 1 FROM"
        " credentials c WHERE c.org_id = d.org_id AND c.dek_version = d.version)",
        below_kek,
    )
    return int(status.split()[-1])


async def count_below(conn: Executor, kek_version: int) -> tuple[int, int]:
    """(credentials, data keys) still under a KEK older than ``kek_version``."""
    record = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM credentials WHERE kek_version < $1),"
        " (SELECT count(*) FROM data_keys WHERE kek_version < $1)",
        kek_version,
    )
    assert record is not None
    return int(record[0]), int(record[1])
