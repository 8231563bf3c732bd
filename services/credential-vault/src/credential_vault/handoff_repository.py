"""SQL of revocation hand-offs: the sealed data of deleted ``oauth2-token`` credentials,
kept for the OAuth broker's RFC 7009 revocation (``migrations/0004``).

``repository.DELETE_CREDENTIAL`` writes the row in the statement that deletes the
credential; here it is taken (read and deleted in one statement, with its audit row:
single use), or taken under an idempotency key (kept, marked, so that key's retry
reads it again for ``RETAKE_SECONDS``), or purged once older than the window or that
long after its take (``migrations/0005``). Nothing here decrypts.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from credential_vault.repository import Audit, Executor, data_key_of, sealed_of

RETAKE_SECONDS = 300.0
"""How long a take under an idempotency key can be repeated with the same key: longer
than the broker's worst case of retrying a take (4 tries, each up to 3 calls with 5 s
timeouts, backoff and ``Retry-After`` up to 30 s: about 150 s)."""


def _take_statement(take: str) -> str:
    """``take`` is a data-modifying statement on ``revocation_handoffs h`` returning
    the row; the audit row and the data key come along in the same statement."""
    return f"""
WITH h AS ({take}
), a AS (
    INSERT INTO audit_log (org_id, actor, request_id, trace_id, action, credential_id, version)
    SELECT org_id, $4, $5, $6, 'take_revocation', credential_id, version FROM h
)
SELECT h.org_id, h.credential_id, h.version, h.dek_version, h.kek_version, h.ciphertext,
    d.wrapped, d.kek_version AS dek_kek_version, d.kek_check AS dek_kek_check
FROM h JOIN data_keys d ON d.org_id = h.org_id AND d.version = h.dek_version
"""


_TAKEABLE = """h.org_id = $1 AND h.credential_id = $2
        AND h.deleted_at > now() - make_interval(secs => $3)"""

TAKE_HANDOFF = _take_statement(f"""
    DELETE FROM revocation_handoffs h
    WHERE {_TAKEABLE} AND h.taken_at IS NULL
    RETURNING *""")

TAKE_HANDOFF_KEYED = _take_statement(f"""
    UPDATE revocation_handoffs h SET taken_at = COALESCE(h.taken_at, now()), take_key = $7
    WHERE {_TAKEABLE}
        AND (h.taken_at IS NULL
             OR (h.take_key = $7 AND h.taken_at > now() - make_interval(secs => $8)))
    RETURNING *""")


class Handoff:
    """A taken hand-off: what opens its ciphertext (bound to org, id and version)."""

    __slots__ = ("credential_id", "data_key", "org_id", "sealed", "version")

    def __init__(self, record: asyncpg.Record) -> None:
        self.org_id: str = record["org_id"]
        self.credential_id: UUID = record["credential_id"]
        self.version: int = record["version"]
        self.sealed = sealed_of(record)
        self.data_key = data_key_of(record)

    def __repr__(self) -> str:
        return f"Handoff({self.credential_id}, v{self.version})"


async def take_handoff(
    conn: Executor,
    org_id: str,
    credential_id: UUID,
    window_seconds: float,
    audit: Audit,
    key: str | None = None,
) -> Handoff | None:
    """Take this org's hand-off of ``credential_id`` if it is within the window, audited
    by the same statement. Without ``key`` the row is deleted (a second take finds
    nothing); with one it is marked taken, and only that key finds it again, for
    ``RETAKE_SECONDS``."""
    args = (org_id, credential_id, window_seconds, *audit.values())
    if key is None:
        record = await conn.fetchrow(TAKE_HANDOFF, *args)
    else:
        record = await conn.fetchrow(TAKE_HANDOFF_KEYED, *args, key, RETAKE_SECONDS)
    return None if record is None else Handoff(record)


PURGE_HANDOFFS = """
DELETE FROM revocation_handoffs
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM revocation_handoffs
    WHERE deleted_at <= now() - make_interval(secs => $1)
       OR taken_at <= now() - make_interval(secs => $3)
    LIMIT $2 FOR UPDATE SKIP LOCKED))
"""


async def purge_handoffs(conn: Executor, window_seconds: float, limit: int) -> int:
    """Destroy up to ``limit`` hand-offs older than the window, or taken (under a key)
    more than ``RETAKE_SECONDS`` ago; replicas take disjoint rows. Returns how many."""
    args = (window_seconds, limit, RETAKE_SECONDS)
    status = await conn.execute(PURGE_HANDOFFS, *args)
    return int(status.split()[-1])
