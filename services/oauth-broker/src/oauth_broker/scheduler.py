"""Refresh ahead of expiry: every replica claims due rows with SKIP LOCKED leases.

A claim bumps the row's fencing token and sets this replica as lease owner in
one statement, so any number of replicas refresh each credential once. Claimed
rows are refreshed concurrently (the per-endpoint cap bounds provider load);
the loop claims more once a quarter of the batch is free instead of waiting for a
whole batch, so a slow provider does not hold up the others.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from plugboard_servicekit.errors import DomainError
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.tasks import wait_event

from oauth_broker.provider import LeaseLostError
from oauth_broker.repository import TokenRow
from oauth_broker.tokens import TokenKeeper
from oauth_broker.vault import MAX_BATCH, Revealed, VaultClient

log = get_logger(__name__)


class Scheduler:
    def __init__(
        self,
        keeper: TokenKeeper,
        vault: VaultClient,
        *,
        batch: int,
        interval: float,
    ) -> None:
        self._keeper, self._vault = keeper, vault
        self._batch, self._interval = batch, interval
        self._running: dict[UUID, asyncio.Task[None]] = {}
        self._slot_free = asyncio.Event()

    async def run(self) -> None:
        while True:
            claimed = await self.claim_once()
            if claimed == 0:
                self._slot_free.clear()
                await wait_event(self._slot_free, self._interval)

    async def claim_once(self) -> int:
        """Claim up to the free slots. While refreshes run, wait until a quarter of the
        batch is free: claiming each freed slot alone cost a claim statement and a vault
        read per refresh, and every claimed row is due ahead of expiry anyway."""
        free = self._batch - len(self._running)
        if free <= 0 or (self._running and free < max(1, self._batch // 4)):
            return 0
        rows = await self._keeper.leases.claim_due(free)
        prefetched = await self._prefetch(rows)
        for row in rows:
            task = asyncio.create_task(self._refresh(row, prefetched.get(row.credential_id)))
            self._running[row.credential_id] = task
            task.add_done_callback(lambda _, key=row.credential_id: self._done(key))
        return len(rows)

    async def _prefetch(self, rows: list[TokenRow]) -> dict[UUID, Revealed]:
        """The claimed credentials read in batches (per org, as the vault scopes calls):
        one vault call instead of one per refresh. A failed batch is only a lost
        shortcut; each refresh then reads its own credential and handles the error."""
        by_org: dict[str, list[UUID]] = defaultdict(list)
        for row in rows:
            by_org[row.org_id].append(row.credential_id)
        chunks = [
            (org, ids[start : start + MAX_BATCH])
            for org, ids in by_org.items()
            for start in range(0, len(ids), MAX_BATCH)
        ]
        found: dict[UUID, Revealed] = {}
        for result in await asyncio.gather(
            *(self._vault.reveal_many(org, ids) for org, ids in chunks), return_exceptions=True
        ):
            if isinstance(result, BaseException):
                log.warning("prefetch_failed", error=type(result).__name__)
            else:
                found.update(result)
        return found

    def _done(self, key: UUID) -> None:
        self._running.pop(key, None)
        self._slot_free.set()

    async def _refresh(self, row: TokenRow, revealed: Revealed | None) -> None:
        try:
            await self._keeper.refresh_scheduled(row, revealed)
        except LeaseLostError:
            log.info("lease_lost", credential_id=str(row.credential_id))
        except DomainError as exc:
            log.info(
                "scheduled_refresh_failed",
                credential_id=str(row.credential_id),
                problem=type(exc).__name__,
                error=exc.extensions.get("error"),
            )
        except Exception as exc:  # noqa: BLE001 - one credential must not stop the loop
            log.warning(
                "scheduled_refresh_error",
                credential_id=str(row.credential_id),
                error=type(exc).__name__,
            )
            await self._keeper.leases.release(row)

    async def drain(self) -> None:
        """Wait for claimed refreshes (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
