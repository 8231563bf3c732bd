"""The lease statements every refresh runs, shared by concurrent refreshes.

Each refresh checks its fencing token right before the provider call and records its
outcome after the vault write. One statement per refresh made Postgres round trips
the broker's largest cost after the provider call in a refresh storm; grouped
(``GroupCommit``), a storm runs one statement per batch of refreshes, and a lone
refresh still runs at once. While the lease has more than a provider call left, the
check needs no statement at all: this process's own clock proves the lease is its own.
The statements' rules are unchanged: only the lease owner with the current fencing
token renews or releases, and a recorded version never goes backwards
(``repository.RECORD_REFRESHES``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from plugboard_servicekit.batching import GroupCommit

from oauth_broker import repository as repo
from oauth_broker.repository import TokenRow

MAX_BATCH = 500
LEASE_MARGIN_SECONDS = 1.0
"""Lease time a check without a statement leaves unused, beyond a provider call."""


@dataclass(frozen=True)
class Refreshed:
    """What a refresh stored in the vault, for the schedule row."""

    version: int
    expires_at: datetime | None
    issued_at: datetime
    due_at: datetime | None
    refreshable: bool


class Leases:
    """This replica's lease statements (owner fixed), each grouped across refreshes of
    one org: an org's check waiting on a locked row never holds up another org's. The
    statements lock in id order, the order every multi-row writer of ``tokens`` uses."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        owner: str,
        lease_seconds: float,
        record_linger: float = 0.0,
        call_seconds: float = math.inf,
    ) -> None:
        """``call_seconds`` bounds a provider call (its timeout); unknown, every check
        asks Postgres."""
        self._pool, self.owner, self.lease_seconds = pool, owner, lease_seconds
        self._unasked = lease_seconds - call_seconds - LEASE_MARGIN_SECONDS
        # A check runs while its refresh holds a slot under the endpoint's cap: never
        # lingers. A record follows the refresh: it may wait for company.
        self._checks = GroupCommit(self._renew, MAX_BATCH, "lease-checks")
        self._records = GroupCommit(self._record, MAX_BATCH, "refresh-records", record_linger)

    async def claim_due(self, limit: int) -> list[TokenRow]:
        """Up to ``limit`` due rows, leased to this owner (the scheduler's claim)."""
        return await repo.claim_due(self._pool, self.owner, limit, self.lease_seconds)

    async def acquire(self, org: str, credential_id: UUID) -> TokenRow | None:
        """The credential's row leased to this owner, or None while another holds it."""
        return await repo.acquire_lease(
            self._pool, org, credential_id, self.owner, self.lease_seconds
        )

    async def still_ours(self, row: TokenRow) -> bool:
        """The fencing check: this owner still holds the lease it claimed.

        A lease runs ``lease_seconds`` from a Postgres time no earlier than
        ``row.held_from``, and no one else can take it before it runs out (a claim needs
        an expired lease; a release or record needs this owner's fencing token). So
        while more than a provider call (plus a margin) of it is left by this process's
        monotonic clock, it is ours without a statement. Otherwise the check asks
        Postgres and extends the lease (a vault write being retried keeps it that way)."""
        if row.held_from is not None and time.monotonic() - row.held_from < self._unasked:
            return True
        return await self._checks.submit(row.org_id, (row.credential_id, row.fencing))

    async def record(self, row: TokenRow, refreshed: Refreshed) -> bool:
        """Record a stored refresh and release this owner's lease; False when a newer
        version was recorded meanwhile (the lease is then left as it is)."""
        return await self._records.submit(row.org_id, (row, refreshed))

    async def release(self, row: TokenRow) -> None:
        await self._pool.execute(repo.RELEASE_LEASE, row.credential_id, self.owner, row.fencing)

    async def _renew(self, _org: str, leases: list[tuple[UUID, int]]) -> list[bool]:
        ids, fencings = [cid for cid, _ in leases], [fencing for _, fencing in leases]
        args = (ids, fencings, self.owner, self.lease_seconds)
        held = {r["credential_id"] for r in await self._pool.fetch(repo.RENEW_LEASES, *args)}
        return [cid in held for cid in ids]

    async def _record(self, _org: str, items: list[tuple[TokenRow, Refreshed]]) -> list[bool]:
        columns = (
            [row.credential_id for row, _ in items],
            [row.fencing for row, _ in items],
            [r.version for _, r in items],
            [r.expires_at for _, r in items],
            [r.issued_at for _, r in items],
            [r.due_at for _, r in items],
            [r.refreshable for _, r in items],
        )
        rows = await self._pool.fetch(repo.RECORD_REFRESHES, self.owner, *columns)
        recorded = {r["credential_id"] for r in rows}
        return [row.credential_id in recorded for row, _ in items]
