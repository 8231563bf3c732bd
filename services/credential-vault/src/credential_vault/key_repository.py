"""SQL of the key hierarchy: data keys per org, KEK check values, replica heartbeats,
the minimum-version fence, and the rows key rotation rewraps.

Kept apart from ``repository`` (credentials, usages, expiry) because only the
data-key helpers and the operator commands use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg
from plugboard_servicekit.db import Connection

from credential_vault.crypto import Sealed, WrappedDataKey
from credential_vault.keyring import KeyRingRefusedError
from credential_vault.repository import Executor, SecretRow


@dataclass(frozen=True, slots=True)
class StoredDataKey:
    """The org's newest data key as a writer sees it, with its use so far."""

    key: WrappedDataKey
    encryptions: int
    expired: bool


@dataclass(frozen=True, slots=True)
class KeyPick:
    """What a writer needs to choose its data key: the fence and the newest key."""

    fence: int
    newest: StoredDataKey | None


@dataclass(frozen=True, slots=True)
class ReplicaRing:
    """One replica's heartbeat: the ring it holds."""

    replica_id: str
    active: int
    min_version: int
    checks: dict[int, str]
    last_seen: datetime


# The fence row FOR SHARE (set-min-version's UPDATE of it waits for this writer, and
# this statement waits for that UPDATE and then reads its value); the newest data key
# FOR KEY SHARE, so the unused-key drop skips it while this writer may still use it.
PICK_DATA_KEY = """
SELECT f.min_version AS fence, d.version, d.kek_version, d.kek_check, d.wrapped, d.encryptions,
       coalesce(d.created_at < now() - make_interval(secs => $2 * 86400), false) AS expired
FROM keyring_fence f LEFT JOIN LATERAL (
    SELECT * FROM data_keys WHERE org_id = $1 ORDER BY version DESC LIMIT 1 FOR KEY SHARE
) d ON true
FOR SHARE OF f
"""


async def pick_data_key(conn: Connection, org_id: str, max_age_days: float | None) -> KeyPick:
    args = (org_id, max_age_days)
    record = await conn.fetchrow(PICK_DATA_KEY, *args)
    assert record is not None, "keyring_fence has its one row (migration 0002)"
    if record["version"] is None:
        return KeyPick(record["fence"], None)
    key = WrappedDataKey(
        org_id, record["version"], record["kek_version"], record["wrapped"], record["kek_check"]
    )
    return KeyPick(record["fence"], StoredDataKey(key, record["encryptions"], record["expired"]))


NEWEST_DATA_KEY = """
SELECT version, kek_version, wrapped, kek_check FROM data_keys WHERE org_id = $1
ORDER BY version DESC LIMIT 1
"""


async def newest_data_key(conn: Executor, org_id: str) -> WrappedDataKey | None:
    """The newest data key, without locks (reads and tests)."""
    args = (org_id,)
    record = await conn.fetchrow(NEWEST_DATA_KEY, *args)
    if record is None:
        return None
    return WrappedDataKey(
        org_id, record["version"], record["kek_version"], record["wrapped"], record["kek_check"]
    )


RESERVE_ENCRYPTIONS = """
UPDATE data_keys SET encryptions = encryptions + $3 WHERE org_id = $1 AND version = $2
RETURNING encryptions
"""


async def reserve_encryptions(
    conn: Connection, org_id: str, version: int, count: int
) -> int | None:
    """Count ``count`` more encryptions; the new total, or None when the key is gone."""
    args = (org_id, version, count)
    total = await conn.fetchval(RESERVE_ENCRYPTIONS, *args)
    return None if total is None else int(total)


INSERT_DATA_KEY = """
WITH claimed AS (
    INSERT INTO kek_versions (version, kek_check) VALUES ($3, $5) ON CONFLICT DO NOTHING
)
INSERT INTO data_keys (org_id, version, kek_version, wrapped, kek_check, encryptions)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true
"""


async def insert_data_key(conn: Connection, key: WrappedDataKey, encryptions: int = 0) -> bool:
    """False when another transaction created this version first.

    Raises ``KeyRingRefusedError`` when the database knows another key under this
    KEK version (the foreign key to ``kek_versions``): this ring is forked."""
    args = (key.org_id, key.version, key.kek_version, key.wrapped, key.kek_check, encryptions)
    try:
        inserted = await conn.fetchval(INSERT_DATA_KEY, *args)
    except asyncpg.ForeignKeyViolationError:
        raise KeyRingRefusedError(
            f"key version {key.kek_version} does not match the database (forked key ring)"
        ) from None
    return bool(inserted)


KEK_CHECKS = "SELECT version, kek_check FROM kek_versions"


async def kek_checks(conn: Executor) -> dict[int, str]:
    """The KCV of every KEK version the database knows."""
    return {record["version"]: record["kek_check"] for record in await conn.fetch(KEK_CHECKS)}


CLAIM_KEK_VERSION = """
WITH claimed AS (
    INSERT INTO kek_versions (version, kek_check) VALUES ($1, $2) ON CONFLICT DO NOTHING
    RETURNING kek_check
)
SELECT kek_check FROM claimed UNION ALL SELECT kek_check FROM kek_versions WHERE version = $1
"""


async def claim_kek_version(conn: Executor, version: int, check: str) -> str:
    """Register ``version`` with ``check`` unless it is known; the check it has now."""
    args = (version, check)
    return str(await conn.fetchval(CLAIM_KEK_VERSION, *args))


RELEASE_KEK_VERSION = """
DELETE FROM kek_versions k WHERE version = $1 AND kek_check = $2
AND NOT EXISTS (SELECT 1 FROM data_keys d WHERE d.kek_version = k.version)
"""


async def release_kek_version(conn: Executor, version: int, check: str) -> None:
    """Undo a claim whose ring file could not be written (only while nothing uses it)."""
    args = (version, check)
    await conn.execute(RELEASE_KEK_VERSION, *args)


LEGACY_DATA_KEY = """
SELECT org_id, version, wrapped FROM data_keys
WHERE kek_version = $1 AND kek_check IS NULL LIMIT 1
"""


async def legacy_data_key(conn: Executor, kek_version: int) -> WrappedDataKey | None:
    """A data key under ``kek_version`` written before check values existed."""
    args = (kek_version,)
    record = await conn.fetchrow(LEGACY_DATA_KEY, *args)
    if record is None:
        return None
    return WrappedDataKey(record["org_id"], record["version"], kek_version, record["wrapped"])


BACKFILL_CHECKS = """
WITH claimed AS (
    INSERT INTO kek_versions (version, kek_check) VALUES ($1, $2) ON CONFLICT DO NOTHING
)
UPDATE data_keys SET kek_check = $2 WHERE kek_version = $1 AND kek_check IS NULL
"""


async def backfill_checks(conn: Executor, kek_version: int, check: str) -> None:
    """Register ``check`` for ``kek_version`` and stamp the data keys written before
    check values existed (only after one of them opened under that key)."""
    args = (kek_version, check)
    # another check registered meanwhile trips the foreign key: the next load compares
    with contextlib.suppress(asyncpg.ForeignKeyViolationError):
        await conn.execute(BACKFILL_CHECKS, *args)


HEARTBEAT = """
WITH pruned AS (
    DELETE FROM keyring_replicas WHERE last_seen < now() - interval '1 day' AND replica_id <> $1
)
INSERT INTO keyring_replicas (replica_id, active_version, min_version, kek_checks, last_seen)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (replica_id) DO UPDATE SET active_version = excluded.active_version,
    min_version = excluded.min_version, kek_checks = excluded.kek_checks, last_seen = now()
"""


async def heartbeat(
    conn: Executor, replica_id: str, active: int, min_version: int, checks: Mapping[int, str]
) -> None:
    """Say which ring this replica holds (rows silent for a day are pruned)."""
    encoded = {str(v): c for v, c in sorted(checks.items())}  # the pool's jsonb codec
    args = (replica_id, active, min_version, encoded)
    await conn.execute(HEARTBEAT, *args)


LIVE_REPLICAS = """
SELECT replica_id, active_version, min_version, kek_checks, last_seen
FROM keyring_replicas WHERE last_seen > now() - make_interval(secs => $1) ORDER BY replica_id
"""


async def live_replicas(conn: Executor, window_seconds: float) -> list[ReplicaRing]:
    """Replicas that reported within ``window_seconds`` (the database's clock)."""
    args = (window_seconds,)
    return [
        ReplicaRing(
            record["replica_id"],
            record["active_version"],
            record["min_version"],
            {int(v): str(c) for v, c in record["kek_checks"].items()},
            record["last_seen"],
        )
        for record in await conn.fetch(LIVE_REPLICAS, *args)
    ]


RAISE_FENCE = "UPDATE keyring_fence SET min_version = $1 RETURNING min_version"


async def raise_fence(conn: Connection, min_version: int) -> None:
    """Set the fence; holds its row lock (and so stops new writers) until commit."""
    args = (min_version,)
    await conn.execute(RAISE_FENCE, *args)


# Every column: a credential row is exactly a SecretRow's (metadata, dek_version,
# kek_version, ciphertext), without a column list imported from another module.
LOCK_STALE_CREDENTIALS = """
SELECT * FROM credentials WHERE kek_version < $1 ORDER BY id LIMIT $2 FOR UPDATE
"""
DATA_KEYS_OF = """
SELECT org_id, version, kek_version, wrapped, kek_check FROM data_keys
WHERE (org_id, version) IN (SELECT * FROM unnest($1::text[], $2::int[]))
"""


async def stale_secrets(conn: Connection, below_kek: int, limit: int) -> list[SecretRow]:
    """Credentials sealed under a KEK older than ``below_kek``, row-locked for rewrap,
    each with its data key.

    The lock is taken on the credentials alone, then their data keys are read: a
    ``FOR UPDATE`` over a join re-checks the join against the old data-key row when a
    concurrent write moved the credential to another data key, and silently drops the
    row (a short batch, or an empty one that ends rewrap too early). Once locked,
    each row's ``dek_version`` is fixed until commit."""
    args = (below_kek, limit)
    records = await conn.fetch(LOCK_STALE_CREDENTIALS, *args)
    pairs = sorted({(record["org_id"], record["dek_version"]) for record in records})
    key_args = ([org for org, _ in pairs], [version for _, version in pairs])
    keys = {
        (key["org_id"], key["version"]): WrappedDataKey(
            key["org_id"], key["version"], key["kek_version"], key["wrapped"], key["kek_check"]
        )
        for key in await conn.fetch(DATA_KEYS_OF, *key_args)
    }
    return [
        SecretRow.with_key(record, keys[record["org_id"], record["dek_version"]])
        for record in records
    ]


RESEAL = "UPDATE credentials SET dek_version = $2, kek_version = $3, ciphertext = $4 WHERE id = $1"


async def reseal(conn: Connection, resealed: Sequence[tuple[UUID, Sealed]]) -> None:
    """New ciphertext for unchanged data: same version, so no event and no audit row."""
    rows = [(cid, s.dek_version, s.kek_version, s.ciphertext) for cid, s in resealed]
    await conn.executemany(RESEAL, rows)


# Candidates FOR UPDATE SKIP LOCKED: a key a writer has picked (FOR KEY SHARE) is
# skipped, not waited for and then deleted under the writer's new credential.
DROP_UNUSED_DATA_KEYS = """
DELETE FROM data_keys d USING (
    SELECT org_id, version FROM data_keys k WHERE k.kek_version < $1 AND NOT EXISTS (
        SELECT 1 FROM credentials c WHERE c.org_id = k.org_id AND c.dek_version = k.version)
    AND NOT EXISTS (
        SELECT 1 FROM revocation_handoffs h
        WHERE h.org_id = k.org_id AND h.dek_version = k.version)
    FOR UPDATE SKIP LOCKED
) unused
WHERE d.org_id = unused.org_id AND d.version = unused.version
"""


async def drop_unused_data_keys(conn: Connection, below_kek: int) -> int:
    """Delete data keys wrapped by KEKs older than ``below_kek`` that nothing references:
    no credential and no revocation hand-off (its sealed tokens need the key until it
    is taken or purged, at most ``VAULT_REVOCATION_HANDOFF_SECONDS``).

    A credential committed between this statement's snapshot and its delete
    trips the foreign key; the statement is then retried with a fresh snapshot."""
    args = (below_kek,)
    for _ in range(5):
        try:
            status = await conn.execute(DROP_UNUSED_DATA_KEYS, *args)
        except asyncpg.ForeignKeyViolationError:
            continue
        return int(status.split()[-1])
    return 0


COUNT_BELOW = """
SELECT (SELECT count(*) FROM credentials WHERE kek_version < $1),
       (SELECT count(*) FROM data_keys WHERE kek_version < $1),
       (SELECT count(*) FROM data_keys d WHERE d.kek_version < $1 AND EXISTS (
            SELECT 1 FROM revocation_handoffs h
             WHERE h.org_id = d.org_id AND h.dek_version = d.version))
"""


class Below(NamedTuple):
    """What is still under a KEK older than a version: credentials, data keys, and
    those of the data keys a revocation hand-off still needs (rewrap keeps them)."""

    credentials: int
    data_keys: int
    held_by_handoffs: int


async def count_below(conn: Executor, kek_version: int) -> Below:
    args = (kek_version,)
    record = await conn.fetchrow(COUNT_BELOW, *args)
    assert record is not None
    return Below(int(record[0]), int(record[1]), int(record[2]))
