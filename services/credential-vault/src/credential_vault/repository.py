"""SQL of credentials and audit (asyncpg, plain SQL; usages are in ``usage_repository``,
the key hierarchy's in ``key_repository``, the sweeper's in ``expiry_repository``, the
token batch's in ``batch_repository``). Functions take a connection so the caller
decides the transaction.

Shape (issue 7 §3): one named constant per statement, its argument tuple built
right next to the call, and one tenant predicate (``TENANT``: org, id, not
expired) that every single-credential statement uses. Statements that write
take the written values first, in ``CredentialWrite`` field order, so insert and
update number them the same way; adding a column means the migration, the
dataclass field and the one or two statements that name it.

Audit rows are written in the same statement as the change they record (a
data-modifying CTE): one round trip, and no change without its audit row.
A credential whose ``expires_at`` has passed is invisible even before the
sweeper deletes it, so it expires exactly at that time for every reader.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_contracts.enums import CredentialType
from plugboard_servicekit.db import Connection

from credential_vault.crypto import Sealed, WrappedDataKey

Executor = Connection | asyncpg.Pool
"""A connection (inside the caller's transaction) or the pool (one autocommit statement)."""


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
COLUMNS = ", ".join(f"c.{name}" for name in _ROW_FIELDS)
"""The metadata columns, read from the dataclass: a new field is selected everywhere."""
TENANT = "c.org_id = $1 AND c.id = $2 AND (c.expires_at IS NULL OR c.expires_at > now())"
"""The tenant predicate: this org's credential, and only while it has not expired."""
TENANTS = TENANT.replace("c.id = $2", "c.id = ANY($2::uuid[])")
"""The same for the batches: this org's credentials among the ids ``$2``."""
SECRET_COLUMNS = f"{COLUMNS}, c.dek_version, c.kek_version, c.ciphertext"
"""A ``SecretRow``'s columns of the credential itself (its data key is read apart)."""


def sealed_of(record: asyncpg.Record) -> Sealed:
    """The ciphertext columns (``dek_version``, ``kek_version``, ``ciphertext``)."""
    return Sealed(record["dek_version"], record["kek_version"], record["ciphertext"])


def data_key_of(record: asyncpg.Record) -> WrappedDataKey:
    """The joined data key's columns (``wrapped``, ``dek_kek_version``, ``dek_kek_check``)."""
    return WrappedDataKey(
        record["org_id"],
        record["dek_version"],
        record["dek_kek_version"],
        record["wrapped"],
        record["dek_kek_check"],
    )


@dataclass(frozen=True, slots=True)
class SecretRow:
    """A credential with its ciphertext and the wrapped data key needed to open it."""

    row: CredentialRow
    sealed: Sealed
    data_key: WrappedDataKey

    @classmethod
    def of(cls, record: asyncpg.Record) -> SecretRow:
        """From one joined record (``REVEAL_SECRET``'s columns)."""
        return cls.with_key(record, data_key_of(record))

    @classmethod
    def with_key(cls, record: asyncpg.Record, data_key: WrappedDataKey) -> SecretRow:
        return cls(CredentialRow.of(record), sealed_of(record), data_key)


@dataclass(frozen=True, slots=True)
class CredentialWrite:
    """What create, update and token replacement store: always ``$1``..``$9``."""

    name: str
    fields_set: list[str]
    errors: list[str]
    expires_at: datetime | None
    access_token_expires_at: datetime | None
    has_refresh_token: bool
    dek_version: int
    kek_version: int
    ciphertext: bytes

    @classmethod
    def sealed_as(cls, sealed: Sealed, **metadata: Any) -> CredentialWrite:
        return cls(
            **metadata,
            dek_version=sealed.dek_version,
            kek_version=sealed.kek_version,
            ciphertext=sealed.ciphertext,
        )

    def values(self) -> tuple[Any, ...]:
        """``$1``..``$9`` of the insert and the update, in field order."""
        return tuple(getattr(self, name) for name in _WRITE_FIELDS)


_WRITE_FIELDS = tuple(field.name for field in fields(CredentialWrite))


@dataclass(frozen=True, slots=True)
class Audit:
    """Who asked, and the request and trace it came with: every audit row carries them."""

    actor: str
    request_id: str | None = None
    trace_id: str | None = None

    def values(self) -> tuple[str, str | None, str | None]:
        return (self.actor, self.request_id, self.trace_id)


# ------------------------------------------------------------------ credentials

INSERT_CREDENTIAL = f"""
WITH c AS (
    INSERT INTO credentials (name, fields_set, errors, expires_at, access_token_expires_at,
        has_refresh_token, dek_version, kek_version, ciphertext, id, org_id, type,
        provider_app_id, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1) RETURNING *
), a AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT org_id, $14, $15, $16, 'create', id, version FROM c
)
SELECT {COLUMNS} FROM c
"""


async def insert_credential(
    conn: Connection,
    *,
    credential_id: UUID,
    org_id: str,
    credential_type: CredentialType,
    provider_app_id: UUID | None,
    write: CredentialWrite,
    audit: Audit,
) -> CredentialRow:
    args = (*write.values(), credential_id, org_id, credential_type, provider_app_id)
    record = await conn.fetchrow(INSERT_CREDENTIAL, *args, *audit.values())
    assert record is not None
    return CredentialRow.of(record)


UPDATE_CREDENTIAL = f"""
WITH c AS (
    UPDATE credentials c SET name = $1, fields_set = $2, errors = $3, expires_at = $4,
        access_token_expires_at = $5, has_refresh_token = $6, dek_version = $7,
        kek_version = $8, ciphertext = $9, version = version + 1, updated_at = now()
    WHERE c.org_id = $10 AND c.id = $11 AND c.version = $12 RETURNING *
), a AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT org_id, $13, $14, $15, $16, id, version FROM c
)
SELECT {COLUMNS} FROM c
"""


async def update_credential(
    conn: Connection, *, current: CredentialRow, write: CredentialWrite, audit: Audit, action: str
) -> CredentialRow | None:
    """Store the next version, compare-and-set on the current one; None if it moved."""
    args = (*write.values(), current.org_id, current.id, current.version)
    record = await conn.fetchrow(UPDATE_CREDENTIAL, *args, *audit.values(), action)
    return None if record is None else CredentialRow.of(record)


GET_CREDENTIAL = f"SELECT {COLUMNS} FROM credentials c WHERE {TENANT}"
LOCK_CREDENTIAL = f"SELECT {COLUMNS} FROM credentials c WHERE {TENANT} FOR UPDATE"


async def get_credential(
    conn: Executor, org_id: str, credential_id: UUID, *, lock: bool = False
) -> CredentialRow | None:
    args = (org_id, credential_id)
    record = await conn.fetchrow(LOCK_CREDENTIAL if lock else GET_CREDENTIAL, *args)
    return None if record is None else CredentialRow.of(record)


async def credential_type_of(
    conn: Connection, org_id: str, credential_id: UUID
) -> CredentialType | None:
    row = await get_credential(conn, org_id, credential_id)
    return None if row is None else row.type


LIST_CREDENTIALS = f"""
SELECT {COLUMNS} FROM credentials c
WHERE c.org_id = $1 AND (c.expires_at IS NULL OR c.expires_at > now())
    AND ($2::text IS NULL OR c.type = $2) AND ($3::text IS NULL OR c.name = $3)
    AND ($4::uuid IS NULL OR c.id > $4)
ORDER BY c.id LIMIT $5
"""


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
    args = (org_id, credential_type, name, after, limit)
    return [CredentialRow.of(record) for record in await conn.fetch(LIST_CREDENTIALS, *args)]


LOCK_SECRET = f"SELECT {SECRET_COLUMNS} FROM credentials c WHERE {TENANT} FOR UPDATE"
DATA_KEY = (
    "SELECT kek_version, wrapped, kek_check FROM data_keys WHERE org_id = $1 AND version = $2"
)


async def lock_secret(conn: Connection, org_id: str, credential_id: UUID) -> SecretRow | None:
    """The credential row-locked until the transaction ends, then its data key.

    The lock is taken on the credential alone: ``FOR UPDATE`` over a join re-checks
    the join against the old data-key row when a concurrent transaction (rewrap, or
    the first write after a rotation) moved the credential to another data key, and
    the row would vanish (a spurious 404). Once locked, its ``dek_version`` is fixed.
    """
    record = await conn.fetchrow(LOCK_SECRET, org_id, credential_id)
    if record is None:
        return None
    key_args = (org_id, record["dek_version"])
    key = await conn.fetchrow(DATA_KEY, *key_args)
    assert key is not None, "credentials reference their data key"
    version = record["dek_version"]
    data_key = WrappedDataKey(org_id, version, key["kek_version"], key["wrapped"], key["kek_check"])
    return SecretRow.with_key(record, data_key)


def _reveal_statement(where: str) -> str:
    """Read and audit in one statement. ``$6`` is the audit row's commit mode: NULL keeps
    the server's ``synchronous_commit``; ``'off'`` commits it without waiting for the WAL
    flush, set for this statement's transaction only (``set_config(..., true)``)."""
    return f"""
WITH c AS (
    SELECT {SECRET_COLUMNS}, d.wrapped,
        d.kek_version AS dek_kek_version, d.kek_check AS dek_kek_check
    FROM credentials c JOIN data_keys d ON d.org_id = c.org_id AND d.version = c.dek_version
    WHERE {where}
), a AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT c.org_id, $3, $4, $5, 'reveal', c.id, c.version
      FROM c, (SELECT set_config('synchronous_commit',
                                 COALESCE($6, current_setting('synchronous_commit')), true)) m
)
SELECT * FROM c
"""


REVEAL_SECRET = _reveal_statement(TENANT)
REVEAL_SECRETS = _reveal_statement(TENANTS)
"""The batch reveal: the same read, one audit row per credential found."""


def _commit_mode(durable_audit: bool) -> str | None:
    return None if durable_audit else "off"


async def reveal_secret(
    conn: Executor, org_id: str, credential_id: UUID, audit: Audit, *, durable_audit: bool
) -> SecretRow | None:
    """Read the secret and write its audit row in one statement (one round trip).
    Run it on the pool, in its own transaction: inside an explicit one, a non-durable
    audit would make that whole transaction's commit asynchronous."""
    mode = _commit_mode(durable_audit)
    record = await conn.fetchrow(REVEAL_SECRET, org_id, credential_id, *audit.values(), mode)
    return None if record is None else SecretRow.of(record)


async def reveal_secrets(
    conn: Executor, org_id: str, credential_ids: list[UUID], audit: Audit, *, durable_audit: bool
) -> list[SecretRow]:
    mode = _commit_mode(durable_audit)
    records = await conn.fetch(REVEAL_SECRETS, org_id, credential_ids, *audit.values(), mode)
    return [SecretRow.of(record) for record in records]


DELETE_CREDENTIAL = f"""
WITH c AS (
    DELETE FROM credentials c WHERE {TENANT} RETURNING *
), h AS (
    INSERT INTO revocation_handoffs (credential_id, org_id, version, dek_version,
        kek_version, ciphertext)
    SELECT id, org_id, version, dek_version, kek_version, ciphertext FROM c
    WHERE c.type = 'oauth2-token'
), a AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT org_id, $3, $4, $5, 'delete', id, version FROM c
)
SELECT {COLUMNS} FROM c
"""


async def delete_credential(
    conn: Connection, org_id: str, credential_id: UUID, audit: Audit
) -> CredentialRow | None:
    """Delete on request (reason ``deleted``); an ``oauth2-token``'s sealed data moves
    to ``revocation_handoffs`` in the same statement, still encrypted, for the broker's
    RFC 7009 revocation (``handoff_repository``). Expiry never comes here."""
    record = await conn.fetchrow(DELETE_CREDENTIAL, org_id, credential_id, *audit.values())
    return None if record is None else CredentialRow.of(record)


# ------------------------------------------------------------------------ audit

RECORD_ATTEMPT = """
INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version,
    outcome) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)
"""


async def record_attempt(
    conn: Executor,
    org_id: str,
    audit: Audit,
    *,
    action: str,
    credential_id: UUID | None,
    outcome: str,
) -> None:
    """An attempt that changed nothing: denied (403), not found (404) or failed (500)."""
    args = (org_id, *audit.values(), action, credential_id, outcome)
    await conn.execute(RECORD_ATTEMPT, *args)
