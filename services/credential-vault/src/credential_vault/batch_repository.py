"""SQL of the set-based token batch (``token_batches``): a batch of one org's
credentials locked, read and written with a constant number of statements, however
many items it holds. Same conventions as ``repository``, whose columns, tenant
predicate and record readers these statements reuse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any
from uuid import UUID

from plugboard_servicekit.db import Connection

from credential_vault.repository import (
    COLUMNS,
    SECRET_COLUMNS,
    TENANTS,
    Audit,
    CredentialRow,
    CredentialWrite,
    SecretRow,
    data_key_of,
)

LOCK_SECRETS = (
    f"SELECT {SECRET_COLUMNS} FROM credentials c WHERE {TENANTS} ORDER BY c.id FOR UPDATE"
)
DATA_KEYS = """
SELECT org_id, version AS dek_version, kek_version AS dek_kek_version, wrapped,
    kek_check AS dek_kek_check
FROM data_keys WHERE org_id = $1 AND version = ANY($2::int[])
"""


async def lock_secrets(
    conn: Connection, org_id: str, credential_ids: Sequence[UUID]
) -> dict[UUID, SecretRow]:
    """The org's live credentials among ``credential_ids``, row-locked in id order (two
    batches over the same ids queue behind each other instead of deadlocking), then the
    data keys of the versions they are sealed under, in one more statement.

    As in ``repository.lock_secret``, the lock is on the credentials alone: ``FOR
    UPDATE`` over a join with ``data_keys`` would drop a row whose data key a
    concurrent rewrap just changed. Once locked, each row's ``dek_version`` is fixed.
    """
    records = await conn.fetch(LOCK_SECRETS, org_id, list(credential_ids))
    versions = sorted({record["dek_version"] for record in records})
    keys = {
        key["dek_version"]: data_key_of(key)
        for key in await conn.fetch(DATA_KEYS, org_id, versions)
    }
    return {
        record["id"]: SecretRow.with_key(record, keys[record["dek_version"]]) for record in records
    }


REFRESH_CREDENTIALS = f"""
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
        $5::timestamptz[], $6::boolean[], $7::int[], $8::int[], $9::bytea[], $10::uuid[],
        $11::int[])
    AS v(name, fields_set, errors, expires_at, access_token_expires_at, has_refresh_token,
        dek_version, kek_version, ciphertext, id, version)
), c AS (
    UPDATE credentials c SET name = v.name,
        fields_set = ARRAY(SELECT jsonb_array_elements_text(v.fields_set::jsonb)),
        errors = ARRAY(SELECT jsonb_array_elements_text(v.errors::jsonb)),
        expires_at = v.expires_at, access_token_expires_at = v.access_token_expires_at,
        has_refresh_token = v.has_refresh_token, dek_version = v.dek_version,
        kek_version = v.kek_version, ciphertext = v.ciphertext, version = c.version + 1,
        updated_at = now()
    FROM v WHERE c.org_id = $12 AND c.id = v.id AND c.version = v.version RETURNING c.*
), a AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT org_id, $13, $14, $15, 'refresh', id, version FROM c ORDER BY id
)
SELECT {COLUMNS} FROM c ORDER BY c.id
"""
"""``UPDATE_CREDENTIAL`` for many rows: one array per ``CredentialWrite`` field (the
list fields as JSON text, since a text[] of text[] must be rectangular), then the ids
and the current versions to compare-and-set on."""

_WRITE_FIELDS = tuple(field.name for field in fields(CredentialWrite))
_LIST_FIELDS = frozenset({"fields_set", "errors"})


def _arrays(writes: Sequence[CredentialWrite]) -> list[list[Any]]:
    """``$1``..``$9``: the writes column by column, list fields as JSON text."""
    arrays = []
    for name in _WRITE_FIELDS:
        column = [getattr(write, name) for write in writes]
        arrays.append([json.dumps(value) for value in column] if name in _LIST_FIELDS else column)
    return arrays


async def refresh_credentials(
    conn: Connection,
    org_id: str,
    changes: Sequence[tuple[CredentialRow, CredentialWrite]],
    audit: Audit,
) -> list[CredentialRow]:
    """Store each row's next version (compare-and-set on its current one) with an audit
    row ``refresh`` each, in one statement; the stored rows in id order (a row that
    moved is missing)."""
    args = (
        *_arrays([write for _, write in changes]),
        [current.id for current, _ in changes],
        [current.version for current, _ in changes],
        org_id,
    )
    records = await conn.fetch(REFRESH_CREDENTIALS, *args, *audit.values())
    return [CredentialRow.of(record) for record in records]
