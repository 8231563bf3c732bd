"""SQL of credentials, usages and expiry (asyncpg, plain SQL; the key hierarchy's is in
``key_repository``). Functions take a connection so the caller decides the
transaction; every query on credentials is scoped to an org.

Audit rows are written in the same statement as the change they record (a
data-modifying CTE): one round trip, and no change without its audit row.
A credential whose ``expires_at`` has passed is invisible even before the
sweeper deletes it, so it expires exactly at that time for every reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.enums import CredentialType
from plugboard_servicekit.db import Connection

from credential_vault.crypto import Sealed, WrappedDataKey

_COLUMNS = (
    "c.id, c.org_id, c.name, c.type, c.version, c.fields_set, c.errors, c.expires_at,"
    " c.access_token_expires_at, c.has_refresh_token, c.provider_app_id,"
    " c.created_at, c.updated_at"
)
SECRET_FROM = (
    f"SELECT {_COLUMNS}, c.dek_version, c.kek_version, c.ciphertext, d.wrapped,"
    " d.kek_version AS dek_kek_version FROM credentials c JOIN data_keys d"
    " ON d.org_id = c.org_id AND d.version = c.dek_version"
)
"""Selects what ``SecretRow.of`` reads: a credential with its wrapped data key."""
_LIVE = "(c.expires_at IS NULL OR c.expires_at > now())"
Executor = Connection | asyncpg.Pool
"""A connection (inside the caller's transaction) or the pool (one autocommit statement)."""

_AUDIT = "INSERT INTO audit_log (org_id, actor, action, credential_id, version)"


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """A credential's metadata: everything but the secret data."""

    id: UUID
    org_id: str
    name: str
    type: CredentialType
    version: int
    fields_set: list[str]
    errors: list[str] | None
    expires_at: datetime | None
    access_token_expires_at: datetime | None
    has_refresh_token: bool
    provider_app_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: asyncpg.Record) -> CredentialRow:
        values = {name: record[name] for name in _ROW_FIELDS}
        values["type"] = CredentialType(values["type"])
        return cls(**values)


_ROW_FIELDS = tuple(field.name for field in fields(CredentialRow))


@dataclass(frozen=True, slots=True)
class SecretRow:
    """A credential with its ciphertext and the wrapped data key needed to open it."""

    row: CredentialRow
    sealed: Sealed
    data_key: WrappedDataKey

    @classmethod
    def of(cls, record: asyncpg.Record) -> SecretRow:
        sealed = Sealed(record["dek_version"], record["kek_version"], record["ciphertext"])
        data_key = WrappedDataKey(
            record["org_id"], record["dek_version"], record["dek_kek_version"], record["wrapped"]
        )
        return cls(CredentialRow.of(record), sealed, data_key)


@dataclass(frozen=True, slots=True)
class CredentialWrite:
    """What create, update and token replacement store (metadata plus ciphertext)."""

    name: str
    fields_set: list[str]
    errors: list[str]
    expires_at: datetime | None
    access_token_expires_at: datetime | None
    has_refresh_token: bool
    sealed: Sealed


@dataclass(frozen=True, slots=True)
class UsageRow:
    credential_id: UUID
    connection_id: UUID
    name: str
    connector_id: UUID | None
    provider: str | None
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- credentials


async def insert_credential(
    conn: Connection,
    *,
    credential_id: UUID,
    org_id: str,
    credential_type: CredentialType,
    provider_app_id: UUID | None,
    write: CredentialWrite,
    actor: str,
) -> CredentialRow:
    record = await conn.fetchrow(
        "WITH c AS (INSERT INTO credentials (id, org_id, type, provider_app_id, version, name,"
        " fields_set, errors, expires_at, access_token_expires_at, has_refresh_token,"
        " dek_version, kek_version, ciphertext)"
        " VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *),"
        f" a AS ({_AUDIT} SELECT org_id, $14, 'create', id, version FROM c)"
        f" SELECT {_COLUMNS} FROM c",
        credential_id,
        org_id,
        credential_type,
        provider_app_id,
        *_write_args(write),
        actor,
    )
    assert record is not None
    return CredentialRow.of(record)


def _write_args(write: CredentialWrite) -> tuple[Any, ...]:
    return (
        write.name,
        write.fields_set,
        write.errors,
        write.expires_at,
        write.access_token_expires_at,
        write.has_refresh_token,
        write.sealed.dek_version,
        write.sealed.kek_version,
        write.sealed.ciphertext,
    )


async def get_credential(
    conn: Executor, org_id: str, credential_id: UUID, *, lock: bool = False
) -> CredentialRow | None:
    record = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM credentials c WHERE c.org_id = $1 AND c.id = $2 AND {_LIVE}"
        + (" FOR UPDATE" if lock else ""),
        org_id,
        credential_id,
    )
    return None if record is None else CredentialRow.of(record)


async def credential_type_of(
    conn: Connection, org_id: str, credential_id: UUID
) -> CredentialType | None:
    row = await get_credential(conn, org_id, credential_id)
    return None if row is None else row.type


async def list_credentials(
    conn: Executor,
    org_id: str,
    *,
    credential_type: CredentialType | None,
    name: str | None,
    after: UUID | None,
    limit: int,
) -> list[CredentialRow]:
    """Keyset page in id order (UUIDv7: creation order); filters are optional."""
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM credentials c WHERE c.org_id = $1 AND {_LIVE}"
        " AND ($2::text IS NULL OR c.type = $2) AND ($3::text IS NULL OR c.name = $3)"
        " AND ($4::uuid IS NULL OR c.id > $4) ORDER BY c.id LIMIT $5",
        org_id,
        credential_type,
        name,
        after,
        limit,
    )
    return [CredentialRow.of(record) for record in records]


async def lock_secret(conn: Connection, org_id: str, credential_id: UUID) -> SecretRow | None:
    """The credential and its key material, row-locked until the transaction ends."""
    record = await conn.fetchrow(
        f"{SECRET_FROM} WHERE c.org_id = $1 AND c.id = $2 AND {_LIVE} FOR UPDATE OF c",
        org_id,
        credential_id,
    )
    return None if record is None else SecretRow.of(record)


async def reveal_secret(
    conn: Executor, org_id: str, credential_id: UUID, actor: str
) -> SecretRow | None:
    """Read the secret and write its audit row in one statement (one round trip)."""
    record = await conn.fetchrow(
        f"WITH c AS ({SECRET_FROM} WHERE c.org_id = $1 AND c.id = $2 AND {_LIVE}),"
        f" a AS ({_AUDIT} SELECT org_id, $3, 'reveal', id, version FROM c)"
        " SELECT * FROM c",
        org_id,
        credential_id,
        actor,
    )
    return None if record is None else SecretRow.of(record)


async def update_credential(
    conn: Connection,
    *,
    current: CredentialRow,
    write: CredentialWrite,
    actor: str,
    action: str,
) -> CredentialRow | None:
    """Store the next version, compare-and-set on the current one; None if it moved."""
    record = await conn.fetchrow(
        "WITH c AS (UPDATE credentials SET version = version + 1, name = $3, fields_set = $4,"
        " errors = $5, expires_at = $6, access_token_expires_at = $7, has_refresh_token = $8,"
        " dek_version = $9, kek_version = $10, ciphertext = $11, updated_at = now()"
        " WHERE org_id = $1 AND id = $2 AND version = $12 RETURNING *),"
        f" a AS ({_AUDIT} SELECT org_id, $13, $14, id, version FROM c)"
        f" SELECT {_COLUMNS} FROM c",
        current.org_id,
        current.id,
        *_write_args(write),
        current.version,
        actor,
        action,
    )
    return None if record is None else CredentialRow.of(record)


async def delete_credential(
    conn: Connection, org_id: str, credential_id: UUID, actor: str
) -> CredentialRow | None:
    record = await conn.fetchrow(
        "WITH c AS (DELETE FROM credentials c WHERE c.org_id = $1 AND c.id = $2"
        f" AND {_LIVE} RETURNING *),"
        f" a AS ({_AUDIT} SELECT org_id, $3, 'delete', id, version FROM c)"
        f" SELECT {_COLUMNS} FROM c",
        org_id,
        credential_id,
        actor,
    )
    return None if record is None else CredentialRow.of(record)


# -------------------------------------------------------------------- expiry


_EXPIRE = f"""
WITH due AS (
    SELECT ctid FROM credentials WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM credentials WHERE ctid = ANY (ARRAY(SELECT ctid FROM due))
    RETURNING id, org_id, name, type, version, expires_at, event_uuid7() AS event_id
), audit AS (
    {_AUDIT} SELECT org_id, $2, 'expire', id, version FROM gone
), staged AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT g.event_id, $3::text, g.id::text, convert_to(json_build_object(
        'specversion', '1.0', 'id', g.event_id, 'source', $4::text, 'type', $3::text,
        'subject', g.id, 'time', s.at, 'datacontenttype', 'application/json',
        'dataschema', $5::text, 'orgid', g.org_id, 'data', json_build_object(
            'organisationId', g.org_id, 'occurredAt', s.at, 'credentialId', g.id,
            'type', g.type, 'name', g.name, 'version', g.version, 'reason', 'expired',
            'expiresAt', utc_json(g.expires_at)))::text, 'UTF8'), $6::jsonb
    FROM gone g CROSS JOIN (SELECT utc_json(now()) AS at) s
)
SELECT count(*) FROM gone
"""


@dataclass(frozen=True, slots=True)
class ExpiredEventSpec:
    """Envelope constants of ``credential.expired`` (from the contracts catalogue)."""

    topic: str
    source: str
    dataschema: str
    headers: dict[str, str]


async def expire_batch(conn: Executor, limit: int, actor: str, event: ExpiredEventSpec) -> int:
    """Delete up to ``limit`` expired credentials, audit them and stage their events.

    One statement: ``SKIP LOCKED`` lets concurrent sweepers (replicas) take disjoint
    rows, so each credential is deleted, audited and announced exactly once; the
    locked rows are deleted by ``ctid`` (they cannot move while locked), so a batch
    costs the same however large the backlog. The ``credential.expired`` envelopes
    are built in SQL, one per row with its own UUIDv7 (the JSON is pinned to the
    contracts model by the integration tests), and staged in the outbox in the same
    transaction as the delete.
    """
    count = await conn.fetchval(
        _EXPIRE, limit, actor, event.topic, event.source, event.dataschema, event.headers
    )
    return int(count or 0)


async def next_expiry(conn: Executor) -> datetime | None:
    return await conn.fetchval("SELECT min(expires_at) FROM credentials")


# -------------------------------------------------------------------- usages


async def usages_of(conn: Executor, credential_ids: Sequence[UUID]) -> dict[UUID, list[UsageRow]]:
    records = await conn.fetch(
        "SELECT credential_id, connection_id, name, connector_id, provider, created_at,"
        " updated_at FROM credential_usages WHERE credential_id = ANY($1::uuid[])"
        " ORDER BY created_at, connection_id",
        list(credential_ids),
    )
    found: dict[UUID, list[UsageRow]] = {cid: [] for cid in credential_ids}
    for record in records:
        found[record["credential_id"]].append(UsageRow(**dict(record)))
    return found


async def upsert_usages(
    conn: Connection,
    *,
    org_id: str,
    connection_id: UUID,
    name: str,
    connector_id: UUID | None,
    provider: str | None,
    credential_ids: Sequence[UUID],
    at: datetime,
) -> None:
    """Record that the connection uses these credentials (unknown or foreign ids are skipped)."""
    await conn.execute(
        "INSERT INTO credential_usages (credential_id, connection_id, org_id, name,"
        " connector_id, provider, created_at, updated_at)"
        " SELECT c.id, $2, $1, $3, $4, $5, $6, $6 FROM credentials c"
        " WHERE c.org_id = $1 AND c.id = ANY($7::uuid[])"
        " ON CONFLICT (credential_id, connection_id) DO UPDATE SET name = excluded.name,"
        " connector_id = excluded.connector_id, provider = excluded.provider,"
        " updated_at = excluded.updated_at",
        org_id,
        connection_id,
        name,
        connector_id,
        provider,
        at,
        list(credential_ids),
    )


async def delete_usages(
    conn: Connection, org_id: str, connection_id: UUID, keep: Sequence[UUID] = ()
) -> None:
    """Drop the connection's usages, except those of the credentials in ``keep``."""
    await conn.execute(
        "DELETE FROM credential_usages WHERE org_id = $1 AND connection_id = $2"
        " AND NOT (credential_id = ANY($3::uuid[]))",
        org_id,
        connection_id,
        list(keep),
    )
