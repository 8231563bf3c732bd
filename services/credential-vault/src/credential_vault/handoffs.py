"""The revocation hand-off purge: a background task of the vault's ``ServiceSpec``.

A hand-off nobody takes (the broker has no revocation URL for it, or never saw the
credential) must not outlive ``VAULT_REVOCATION_HANDOFF_SECONDS``: the tokens it
seals are a customer's live secrets. Every replica runs it; ``SKIP LOCKED`` keeps
them from contending, and a database outage only delays it.
"""

from __future__ import annotations

import asyncio

import asyncpg
from plugboard_servicekit.logging import get_logger

from credential_vault.handoff_repository import purge_handoffs

log = get_logger(__name__)

PURGE_BATCH = 1000


async def purge_once(pool: asyncpg.Pool, window_seconds: float) -> int:
    """Destroy every hand-off older than the window, a batch at a time."""
    purged = 0
    while (count := await purge_handoffs(pool, window_seconds, PURGE_BATCH)) > 0:
        purged += count
        if count < PURGE_BATCH:
            break
    return purged


async def run_handoff_purge(pool: asyncpg.Pool, window_seconds: float, interval: float) -> None:
    """Purge forever, every ``interval`` seconds."""
    while True:
        try:
            purged = await purge_once(pool, window_seconds)
            if purged:
                log.info("revocation_handoffs_purged", count=purged)
        except Exception as exc:  # noqa: BLE001 - the purge must outlive any outage
            log.warning("revocation_handoff_purge_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)
