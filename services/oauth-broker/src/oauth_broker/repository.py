"""All SQL of the broker (schema ``oauth``). Every tenant-owned read filters on
``org_id = $org`` (the shared predicate), so another org's id is simply not found."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from plugboard_servicekit.db import Connection

Executor = asyncpg.Pool | Connection

TENANT = "org_id = $1"

UPSERT_CONFIG = """
INSERT INTO oauth_configs (config_key, org_id, provider, version, deleted, settings)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (config_key) DO UPDATE
   SET org_id = excluded.org_id, provider = excluded.provider, version = excluded.version,
       deleted = excluded.deleted, settings = excluded.settings, updated_at = now()
 WHERE oauth_configs.version < excluded.version
RETURNING true"""

GET_CONFIGS = f"""
SELECT config_key, provider, settings FROM oauth_configs
 WHERE {TENANT} AND config_key = ANY($2::text[]) AND NOT deleted AND settings IS NOT NULL"""

PUT_REDIRECTS = """
INSERT INTO redirect_settings (org_id, allowed_redirect_urls) VALUES ($1, $2)
ON CONFLICT (org_id) DO UPDATE SET allowed_redirect_urls = excluded.allowed_redirect_urls,
                                   updated_at = now()"""

GET_REDIRECTS = f"SELECT allowed_redirect_urls FROM redirect_settings WHERE {TENANT}"

INSERT_SESSION = """
INSERT INTO sessions (id, org_id, state_hash, config_key, grant_type, code_verifier,
                      expected_issuer, redirect_url, scopes, context, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"""

# Single use: the first callback marks the session consumed and takes the verifier
# away in the same statement; a replay, even a concurrent one, finds nothing.
TAKE_SESSION = """
WITH taken AS (
    SELECT id, code_verifier FROM sessions WHERE state_hash = $1 AND NOT consumed FOR UPDATE)
UPDATE sessions s SET consumed = true, code_verifier = NULL
  FROM taken WHERE s.id = taken.id
RETURNING s.id, s.org_id, s.config_key, s.grant_type, s.status, s.expected_issuer,
          s.redirect_url, s.scopes, s.context, taken.code_verifier,
          s.expires_at <= now() AS expired"""

FINISH_SESSION = """
UPDATE sessions SET status = $2, credential_id = $3, error = $4, code_verifier = NULL,
                    finished_at = now()
 WHERE id = $1 AND status = 'pending'
RETURNING true"""

GET_SESSION = f"""
SELECT id, status, credential_id, error, expires_at, created_at FROM sessions
 WHERE {TENANT} AND id = $2"""

TOKEN_COLUMNS = """credential_id, org_id, config_key, vault_version, has_refresh_token,
    access_expires_at, issued_at, due_at, status, attempts, retry_at, last_error, grant_type,
    source_credential_id, fencing, lease_owner, lease_until > now() AS leased, template_inputs"""

# A row without a config (a credential made elsewhere, not yet bound) is kept but never
# due. The broker's own binding may arrive after the vault's credential.created of the
# same version: it still fills in the config then.
UPSERT_TOKEN = """
INSERT INTO tokens (credential_id, org_id, config_key, vault_version, has_refresh_token,
                    access_expires_at, issued_at, due_at, grant_type, source_credential_id)
VALUES ($1, $2, $3, $4, $5, $6, $7,
        CASE WHEN $3::text IS NULL THEN NULL ELSE $8::timestamptz END, $9, $10)
ON CONFLICT (credential_id) DO UPDATE
   SET config_key = COALESCE(excluded.config_key, tokens.config_key),
       vault_version = excluded.vault_version, has_refresh_token = excluded.has_refresh_token,
       access_expires_at = excluded.access_expires_at, issued_at = excluded.issued_at,
       due_at = CASE WHEN COALESCE(excluded.config_key, tokens.config_key) IS NULL THEN NULL
                     ELSE $8::timestamptz END,
       grant_type = COALESCE(excluded.grant_type, tokens.grant_type),
       source_credential_id = COALESCE(excluded.source_credential_id,
                                       tokens.source_credential_id),
       status = 'active', attempts = 0, retry_at = NULL, last_error = NULL
 WHERE NOT tokens.deleted
   AND (tokens.vault_version < excluded.vault_version
        OR (tokens.vault_version = excluded.vault_version AND tokens.config_key IS NULL
            AND excluded.config_key IS NOT NULL))
RETURNING true"""

# The (id, version, config key) states UPSERT_TOKEN would not apply (its WHERE), read
# without locking: versions only grow and a row is bound at most once, so a state stale
# now stays stale.
STALE_STATES = """
SELECT s.credential_id, s.version, s.config_key
  FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS s(credential_id, version, config_key)
  JOIN tokens t ON t.credential_id = s.credential_id
 WHERE t.deleted OR t.vault_version > s.version
    OR (t.vault_version = s.version AND (t.config_key IS NOT NULL OR s.config_key IS NULL))"""

SET_TEMPLATE_INPUTS = "UPDATE tokens SET template_inputs = $2 WHERE credential_id = $1"
"""The inputs that filled a provider app's URL templates, for this credential's refreshes."""

DELETE_TOKEN = """
INSERT INTO tokens (credential_id, org_id, vault_version, deleted)
VALUES ($1, $2, $3, true)
ON CONFLICT (credential_id) DO UPDATE SET deleted = true, due_at = NULL,
       vault_version = GREATEST(tokens.vault_version, excluded.vault_version)
 WHERE NOT tokens.deleted
RETURNING config_key"""

GET_TOKEN = (
    f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE {TENANT} AND credential_id = $2 AND NOT deleted"
)

ACQUIRE_LEASE = f"""
UPDATE tokens SET lease_owner = $3, lease_until = now() + make_interval(secs => $4),
                  fencing = fencing + 1
 WHERE {TENANT} AND credential_id = $2 AND NOT deleted
   AND (lease_until IS NULL OR lease_until <= now())
RETURNING {TOKEN_COLUMNS}"""

CLAIM_DUE = f"""
WITH due AS (
    SELECT credential_id FROM tokens
     WHERE status = 'active' AND NOT deleted AND due_at <= now()
       AND (lease_until IS NULL OR lease_until <= now())
     ORDER BY due_at LIMIT $2
       FOR UPDATE SKIP LOCKED)
UPDATE tokens t SET lease_owner = $1, lease_until = now() + make_interval(secs => $3),
                    fencing = t.fencing + 1
  FROM due WHERE t.credential_id = due.credential_id
RETURNING {TOKEN_COLUMNS.replace("credential_id,", "t.credential_id,", 1)}"""

# Only the owner with the current fencing token releases or records.
_OWNED = "credential_id = $1 AND lease_owner = $2 AND fencing = $3"

RELEASE_LEASE = f"UPDATE tokens SET lease_owner = NULL, lease_until = NULL WHERE {_OWNED}"

# The vault's compare-and-set already decided these writes are the newest, so the
# schedule follows them even if a lease was lost meanwhile; only the owner ($1) with the
# item's fencing token releases it. Rows are locked in id order (two replicas' batches
# cannot deadlock); an id twice in one batch counts once, with its higher version.
RECORD_REFRESHES = """
WITH r AS (
    SELECT DISTINCT ON (credential_id) * FROM unnest($2::uuid[], $3::bigint[], $4::bigint[],
           $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::boolean[])
        AS r(credential_id, fencing, version, expires_at, issued_at, due_at, has_refresh)
     ORDER BY credential_id, version DESC),
locked AS (
    SELECT t.credential_id FROM tokens t JOIN r USING (credential_id)
     WHERE t.vault_version <= r.version ORDER BY t.credential_id FOR UPDATE OF t)
UPDATE tokens t SET vault_version = r.version, access_expires_at = r.expires_at,
       issued_at = r.issued_at, due_at = r.due_at, has_refresh_token = r.has_refresh,
       status = 'active', attempts = 0, retry_at = NULL, last_error = NULL,
       refreshes = t.refreshes + 1,
       lease_owner = CASE WHEN t.lease_owner = $1 AND t.fencing = r.fencing
                          THEN NULL ELSE t.lease_owner END,
       lease_until = CASE WHEN t.lease_owner = $1 AND t.fencing = r.fencing
                          THEN NULL ELSE t.lease_until END
  FROM r JOIN locked USING (credential_id)
 WHERE t.credential_id = r.credential_id AND t.vault_version <= r.version
RETURNING t.credential_id"""
"""``<=``: the vault's ``credential.refreshed`` for this very write may have been
consumed first (it sets the same version); the refresh is still recorded and its lease
released. An older version never overwrites a newer one."""

RECORD_TRANSIENT = f"""
UPDATE tokens SET attempts = attempts + 1, retry_at = $4, due_at = $4, last_error = $5,
       lease_owner = NULL, lease_until = NULL
 WHERE {_OWNED}
RETURNING attempts"""

RECORD_PERMANENT = f"""
UPDATE tokens SET attempts = attempts + 1, status = 'failed', due_at = NULL, retry_at = NULL,
       last_error = $4, lease_owner = NULL, lease_until = NULL,
       vault_version = GREATEST(vault_version, $5)
 WHERE {_OWNED} AND status = 'active'
RETURNING attempts"""

SYNC_VERSION = """
UPDATE tokens SET vault_version = $2, access_expires_at = $3, issued_at = $4, due_at = $5,
       has_refresh_token = $6, status = 'active', attempts = 0, last_error = NULL
 WHERE credential_id = $1 AND vault_version < $2"""


@dataclass(frozen=True)
class TokenRow:
    credential_id: UUID
    org_id: str
    config_key: str | None
    vault_version: int
    has_refresh_token: bool
    access_expires_at: datetime | None
    issued_at: datetime
    due_at: datetime | None
    status: str
    attempts: int
    retry_at: datetime | None
    last_error: str | None
    grant_type: str | None
    source_credential_id: UUID | None
    fencing: int
    lease_owner: str | None
    leased: bool | None
    template_inputs: dict[str, str] | None = None
    held_from: float | None = None
    """For a lease this process took: its monotonic clock read right before the claiming
    statement was sent, so no later than the lease's start (``Leases.still_ours``)."""

    @classmethod
    def of(cls, record: Any, held_from: float | None = None) -> TokenRow:
        return cls(**dict(record), held_from=held_from)


async def upsert_config(
    conn: Executor,
    key: str,
    org: str,
    provider: str | None,
    version: int,
    settings: dict[str, Any] | None,
    *,
    deleted: bool = False,
) -> bool:
    args = (key, org, provider, version, deleted, settings)
    return bool(await conn.fetchval(UPSERT_CONFIG, *args))


async def get_configs(
    conn: Executor, org: str, keys: Sequence[str]
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """The org's live configs among ``keys`` (provider, settings), by key."""
    rows = await conn.fetch(GET_CONFIGS, org, list(keys))
    return {row["config_key"]: (row["provider"], row["settings"]) for row in rows}


async def put_redirects(conn: Executor, org: str, urls: Sequence[str]) -> None:
    await conn.execute(PUT_REDIRECTS, org, list(urls))


async def get_redirects(conn: Executor, org: str) -> list[str]:
    return list(await conn.fetchval(GET_REDIRECTS, org) or [])


async def get_token(conn: Executor, org: str, credential_id: UUID) -> TokenRow | None:
    row = await conn.fetchrow(GET_TOKEN, org, credential_id)
    return None if row is None else TokenRow.of(row)


async def stale_states(
    conn: Executor, states: Sequence[tuple[UUID, int, str | None]]
) -> set[tuple[UUID, int, str | None]]:
    """Those of the (credential id, version, config key) states the schedule has seen."""
    columns = ([s[0] for s in states], [s[1] for s in states], [s[2] for s in states])
    rows = await conn.fetch(STALE_STATES, *columns)
    return {(r["credential_id"], r["version"], r["config_key"]) for r in rows}


async def acquire_lease(
    conn: Executor, org: str, credential_id: UUID, owner: str, seconds: float
) -> TokenRow | None:
    sent = time.monotonic()
    row = await conn.fetchrow(ACQUIRE_LEASE, org, credential_id, owner, seconds)
    return None if row is None else TokenRow.of(row, held_from=sent)


async def claim_due(conn: Executor, owner: str, limit: int, seconds: float) -> list[TokenRow]:
    sent = time.monotonic()
    rows = await conn.fetch(CLAIM_DUE, owner, limit, seconds)
    return [TokenRow.of(r, held_from=sent) for r in rows]


def as_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# Fencing check before every provider call (it extends the lease): the ids ($1, with
# their fencing tokens $2) whose lease owner $3 still holds.
RENEW_LEASES = """
WITH mine AS (
    SELECT t.credential_id FROM tokens t
      JOIN unnest($1::uuid[], $2::bigint[]) AS o(credential_id, fencing)
        ON t.credential_id = o.credential_id AND t.fencing = o.fencing
     WHERE t.lease_owner = $3 AND t.lease_until > now()
     ORDER BY t.credential_id FOR UPDATE OF t)
UPDATE tokens t SET lease_until = now() + make_interval(secs => $4)
  FROM mine WHERE t.credential_id = mine.credential_id
RETURNING t.credential_id"""
