"""Order-tolerant apply: act on an aggregate's event only when it is newer.

One topic per event type means `x.created`, `x.updated` and `x.deleted` of one
aggregate are not ordered relative to each other, and any of them can be
redelivered. Every state event carries its aggregate's monotonic `version`; a
consumer calls `advance` in its handler's transaction and applies the event only
when it returns True. The row per aggregate (`aggregate_versions`, a servicekit
migration in every service schema) holds the newest version seen; a deletion is
kept as a tombstone, so a `created` arriving after its `deleted` is stale.

The upsert locks the aggregate's row, so concurrent handlers of one aggregate
(different topics, different partitions) serialise on it and the newest wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from plugboard_servicekit.db import Connection

_ADVANCE = (
    "INSERT INTO aggregate_versions (aggregate, aggregate_id, version, deleted)"
    " VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (aggregate, aggregate_id) DO UPDATE"
    " SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = now()"
    " WHERE aggregate_versions.version < EXCLUDED.version"
    " RETURNING 1"
)
_ADVANCE_MANY = (
    "INSERT INTO aggregate_versions (aggregate, aggregate_id, version, deleted)"
    " SELECT $1, item.id, item.version, item.deleted"
    " FROM unnest($2::text[], $3::bigint[], $4::bool[]) AS item (id, version, deleted)"
    " ON CONFLICT (aggregate, aggregate_id) DO UPDATE"
    " SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = now()"
    " WHERE aggregate_versions.version < EXCLUDED.version"
    " RETURNING aggregate_id"
)


def _check(version: int) -> None:
    if version < 1:
        raise ValueError("aggregate versions start at 1")


async def advance(
    conn: Connection,
    aggregate: str,
    aggregate_id: str | UUID,
    version: int,
    *,
    deleted: bool = False,
) -> bool:
    """Record `version` for the aggregate and return True when it is newer than
    every version seen so far (a tombstone included); False means the event is
    stale or a duplicate and must change nothing. Call it inside the transaction
    that applies the event, so the record and the effect commit together."""
    _check(version)
    row = await conn.fetchval(_ADVANCE, aggregate, str(aggregate_id), version, deleted)
    return row is not None


async def advance_many(
    conn: Connection, aggregate: str, items: Sequence[tuple[str | UUID, int, bool]]
) -> set[str]:
    """`advance` for many `(aggregate_id, version, deleted)` at once (a batch
    handler); returns the ids (as text) that advanced. An id given more than once
    counts with its newest item (a deletion wins a tie), so apply only each id's
    newest event. Ids are locked in sorted order, so two batches never deadlock."""
    newest: dict[str, tuple[int, bool]] = {}
    for aggregate_id, version, deleted in items:
        _check(version)
        key = str(aggregate_id)
        if key not in newest or (version, deleted) > newest[key]:
            newest[key] = (version, deleted)
    if not newest:
        return set()
    ids = sorted(newest)
    rows = await conn.fetch(
        _ADVANCE_MANY,
        aggregate,
        ids,
        [newest[key][0] for key in ids],
        [newest[key][1] for key in ids],
    )
    return {row["aggregate_id"] for row in rows}
