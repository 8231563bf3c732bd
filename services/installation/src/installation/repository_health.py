"""Health from credential events, set-based: one statement per event, however many
connections and installations the credential backs.

``APPLY_HEALTH`` takes a batch of facts (a consumer's batch of one topic partition),
records each credential's newest fact (older facts change nothing),
flips the connections that use it and the installations that run on them, bumps
their versions, and stages ``connection.updated`` and ``installation.health_changed``
for exactly the rows that changed, built in SQL as one multi-row outbox insert each.
Health events are what subscribers wait for, so they take the lower outbox ids and
the relay sends them first: the connection insert reads the health insert's result,
which makes PostgreSQL finish that one first (data-modifying CTEs that nothing reads
run in no documented order, and in practice the last one first).
So 10,000 installations, or 1,000 credentials, cost one round trip, and a redelivered or stale event
finds nothing to change and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from plugboard_contracts.topics import CATALOGUE

from installation.repository import Executor

SOURCE = "installation"

APPLY_HEALTH = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::bool[], $4::text[], $5::timestamptz[])
        AS t (org_id, credential_id, bad, reason, occurred_at)
), fact AS (
    INSERT INTO credential_health (credential_id, bad, reason, occurred_at)
    SELECT credential_id, bad, reason, occurred_at FROM input
    ON CONFLICT (credential_id) DO UPDATE
        SET bad = EXCLUDED.bad, reason = EXCLUDED.reason, occurred_at = EXCLUDED.occurred_at
        WHERE credential_health.occurred_at < EXCLUDED.occurred_at
    RETURNING credential_id
), target AS (
    SELECT c.id, i.bad, i.reason, i.credential_id
    FROM connections c JOIN input i ON c.credential_id = i.credential_id AND c.org_id = i.org_id
    WHERE c.credential_id IN (SELECT credential_id FROM fact)
    FOR UPDATE OF c
), conns AS (
    UPDATE connections c
    SET status = CASE WHEN t.bad THEN 'bad_credentials' ELSE 'working' END,
        version = c.version + 1, updated_at = now()
    FROM target t
    WHERE c.id = t.id AND (c.status = 'bad_credentials') IS DISTINCT FROM t.bad
    RETURNING c.id, c.org_id, c.provider, c.connector_id, c.group_ref, c.credential_id, c.version
), old AS (
    SELECT i.id, i.health_status, t.bad, t.reason, t.credential_id
    FROM installations i JOIN target t ON i.connection_id = t.id
    WHERE i.health_status <> CASE WHEN t.bad THEN 'unhealthy' ELSE 'healthy' END
    FOR UPDATE OF i
), insts AS (
    UPDATE installations i
    SET health_status = CASE WHEN old.bad THEN 'unhealthy' ELSE 'healthy' END,
        health_reason = old.reason, updated_at = now()
    FROM old WHERE i.id = old.id
    RETURNING i.id, i.org_id, i.connection_id, old.health_status AS previous, i.health_status,
        old.reason, old.credential_id
), stamp AS (
    SELECT utc_json(now()) AS at
), inst_events AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT i.event_id, 'installation.health_changed', i.id::text, convert_to(json_build_object(
        'specversion', '1.0', 'id', i.event_id, 'source', $6::text,
        'type', 'installation.health_changed', 'subject', i.id, 'time', s.at,
        'datacontenttype', 'application/json', 'dataschema', $8::text, 'orgid', i.org_id,
        'data', json_build_object(
            'organisationId', i.org_id, 'occurredAt', s.at, 'installationId', i.id,
            'connectionId', i.connection_id, 'previousStatus', i.previous,
            'healthStatus', i.health_status, 'reason', i.reason,
            'credentialId', i.credential_id
        ))::text, 'UTF8'), $9::jsonb
    FROM (SELECT *, event_uuid7() AS event_id FROM insts) i CROSS JOIN stamp s
    RETURNING id
), conn_events AS (
    INSERT INTO outbox (event_id, topic, key, payload, headers)
    SELECT c.event_id, 'connection.updated', c.id::text, convert_to(json_build_object(
        'specversion', '1.0', 'id', c.event_id, 'source', $6::text,
        'type', 'connection.updated', 'subject', c.id, 'time', s.at,
        'datacontenttype', 'application/json', 'dataschema', $7::text, 'orgid', c.org_id,
        'data', json_build_object(
            'organisationId', c.org_id, 'occurredAt', s.at, 'version', c.version,
            'connectionId', c.id, 'name', c.provider || ':' || c.group_ref,
            'connectorId', c.connector_id, 'provider', c.provider,
            'credentialIds', json_build_array(c.credential_id)))::text, 'UTF8'), $9::jsonb
    FROM (SELECT *, event_uuid7() AS event_id FROM conns) c CROSS JOIN stamp s
    WHERE (SELECT count(*) FROM inst_events) >= 0  -- after the health events: higher ids
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


def newest(facts: Sequence[HealthFact]) -> list[HealthFact]:
    """One fact per credential, its newest (a statement may touch a row only once)."""
    chosen: dict[UUID, HealthFact] = {}
    for fact in facts:
        seen = chosen.get(fact.credential_id)
        if seen is None or fact.occurred_at >= seen.occurred_at:
            chosen[fact.credential_id] = fact
    return list(chosen.values())


async def apply_health(
    conn: Executor, facts: Sequence[HealthFact], headers: dict[str, str]
) -> HealthChange:
    """Apply ``facts`` to everything their credentials back, in the caller's transaction."""
    items = newest(facts)
    if not items:
        return HealthChange(0, 0)
    args = (
        [f.org_id for f in items],
        [f.credential_id for f in items],
        [f.bad for f in items],
        [f.reason for f in items],
        [f.occurred_at for f in items],
        SOURCE,
        _dataschema("connection.updated"),
        _dataschema("installation.health_changed"),
        headers,
    )
    record = await conn.fetchrow(APPLY_HEALTH, *args)
    assert record is not None
    return HealthChange(int(record["installations"]), int(record["connections"]))
