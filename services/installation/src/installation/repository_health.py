"""Health from credential events, set-based: one statement per event, however many
connections and installations the credential backs.

``APPLY_HEALTH`` records the credential's newest fact (older facts change nothing),
flips the connections that use it and the installations that run on them, bumps
their versions, and stages ``connection.updated`` and ``installation.health_changed``
for exactly the rows that changed, built in SQL as one multi-row outbox insert each.
So 10,000 installations cost one round trip, and a redelivered or stale event
finds nothing to change and publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from plugboard_contracts.topics import CATALOGUE

from installation.repository import Executor

SOURCE = "installation"

APPLY_HEALTH = """
WITH fact AS (
    INSERT INTO credential_health (credential_id, bad, reason, occurred_at)
    VALUES ($2, $3, $4, $5)
    ON CONFLICT (credential_id) DO UPDATE
        SET bad = EXCLUDED.bad, reason = EXCLUDED.reason, occurred_at = EXCLUDED.occurred_at
        WHERE credential_health.occurred_at < EXCLUDED.occurred_at
    RETURNING 1
), target AS (
    SELECT c.id FROM connections c
    WHERE c.org_id = $1 AND c.credential_id = $2 AND EXISTS (SELECT 1 FROM fact)
    FOR UPDATE
), conns AS (
    UPDATE connections c
    SET status = CASE WHEN $3 THEN 'bad_credentials' ELSE 'working' END,
        version = c.version + 1, updated_at = now()
    FROM target t
    WHERE c.id = t.id AND (c.status = 'bad_credentials') IS DISTINCT FROM $3
    RETURNING c.id, c.org_id, c.provider, c.connector_id, c.group_ref, c.credential_id, c.version
), old AS (
    SELECT i.id, i.health_status FROM installations i JOIN target t ON i.connection_id = t.id
    WHERE i.health_status <> $6
    FOR UPDATE OF i
), insts AS (
    UPDATE installations i SET health_status = $6, health_reason = $4, updated_at = now()
    FROM old WHERE i.id = old.id
    RETURNING i.id, i.org_id, i.connection_id, old.health_status AS previous
), stamp AS (
    SELECT utc_json(now()) AS at
), conn_events AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT c.event_id, 'connection.updated', c.id::text, convert_to(json_build_object(
        'specversion', '1.0', 'id', c.event_id, 'source', $7::text,
        'type', 'connection.updated', 'subject', c.id, 'time', s.at,
        'datacontenttype', 'application/json', 'dataschema', $8::text, 'orgid', c.org_id,
        'data', json_build_object(
            'organisationId', c.org_id, 'occurredAt', s.at, 'version', c.version,
            'connectionId', c.id, 'name', c.provider || ':' || c.group_ref,
            'connectorId', c.connector_id, 'provider', c.provider,
            'credentialIds', json_build_array(c.credential_id)))::text, 'UTF8'), $10::jsonb
    FROM (SELECT *, event_uuid7() AS event_id FROM conns) c CROSS JOIN stamp s
), inst_events AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT i.event_id, 'installation.health_changed', i.id::text, convert_to(json_build_object(
        'specversion', '1.0', 'id', i.event_id, 'source', $7::text,
        'type', 'installation.health_changed', 'subject', i.id, 'time', s.at,
        'datacontenttype', 'application/json', 'dataschema', $9::text, 'orgid', i.org_id,
        'data', json_build_object(
            'organisationId', i.org_id, 'occurredAt', s.at, 'installationId', i.id,
            'connectionId', i.connection_id, 'previousStatus', i.previous,
            'healthStatus', $6::text, 'reason', $4::text, 'credentialId', $2::uuid
        ))::text, 'UTF8'), $10::jsonb
    FROM (SELECT *, event_uuid7() AS event_id FROM insts) i CROSS JOIN stamp s
)
SELECT (SELECT count(*) FROM insts) AS installations, (SELECT count(*) FROM conns) AS connections
"""


@dataclass(frozen=True, slots=True)
class HealthFact:
    """What one credential event says: bad (unusable) or good, why, and when."""

    org_id: str
    credential_id: UUID
    bad: bool
    reason: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class HealthChange:
    installations: int
    connections: int


def _dataschema(topic: str) -> str:
    return CATALOGUE[topic].dataschema


async def apply_health(conn: Executor, fact: HealthFact, headers: dict[str, str]) -> HealthChange:
    """Apply ``fact`` to everything the credential backs, in the caller's transaction."""
    status = "unhealthy" if fact.bad else "healthy"
    args = (
        fact.org_id,
        fact.credential_id,
        fact.bad,
        fact.reason,
        fact.occurred_at,
        status,
        SOURCE,
        _dataschema("connection.updated"),
        _dataschema("installation.health_changed"),
        headers,
    )
    record = await conn.fetchrow(APPLY_HEALTH, *args)
    assert record is not None
    return HealthChange(int(record["installations"]), int(record["connections"]))
