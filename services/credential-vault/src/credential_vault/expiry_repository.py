"""SQL of the expiry sweeper: the one-statement expiry batch and the next expiry.

Kept apart from ``repository`` (the credential API's statements) because the sweeper
is its only user and its statement builds ``credential.expired`` envelopes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from credential_vault.repository import Executor

EXPIRE_BATCH = """
WITH due AS (
    SELECT ctid FROM credentials WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM credentials WHERE ctid = ANY (ARRAY(SELECT ctid FROM due))
    RETURNING id, org_id, name, type, version, expires_at, event_uuid7() AS event_id
), audit AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT org_id, $2, NULL, NULL, 'expire', id, version FROM gone
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
    args = (limit, actor, event.topic, event.source, event.dataschema, event.headers)
    return int(await conn.fetchval(EXPIRE_BATCH, *args) or 0)


NEXT_EXPIRY = "SELECT min(expires_at) FROM credentials"


async def next_expiry(conn: Executor) -> datetime | None:
    return await conn.fetchval(NEXT_EXPIRY)
