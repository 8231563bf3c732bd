"""Key rotation: add a KEK version, rewrap everything onto it, retire the old versions.

``rewrap`` runs online next to live replicas: it works in small transactions,
each locking a batch of credentials sealed under an older KEK, re-encrypting
their (unchanged) data under the org's current data key, which is minted under
the active KEK when needed. Credential versions do not change, so no event and
no audit row is written; a crash loses nothing and a rerun continues where the
last committed batch ended. Plaintext only exists inside this process.

Every command that writes the ring file holds ``keyring_lock`` from read to
write, checks the file against the database (KEK check values, the replicas'
heartbeats), and ``rotate-key`` claims the new version's check value in the
database first: two rotations from the same base, even on two machines, cannot
both make a "v2". Retiring steps refuse while a live replica (seen within
``window`` seconds) holds an older or different ring, and name it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg

from credential_vault import key_repository as keys_repo
from credential_vault.crypto import DataKey, Envelope
from credential_vault.datakeys import current_data_key, decrypt
from credential_vault.key_repository import ReplicaRing
from credential_vault.keyring import (
    KeyRing,
    KeyRingError,
    keyring_lock,
    load_keyring_file,
    ring_conflict,
    save_keyring,
)
from credential_vault.repository import Executor

REPLICA_WINDOW_SECONDS = 30.0
"""A replica that reported its ring this recently counts as live (heartbeats every 5 s)."""


class RotationRefusedError(Exception):
    """The operation would make stored data unreadable; the message says what remains."""


async def check_against_database(conn: Executor, ring: KeyRing, window: float) -> None:
    """Refuse a ring file that contradicts the database: a version whose check value
    differs (forked), or versions newer than its active one already in use."""
    known = await keys_repo.kek_checks(conn)
    reason = ring_conflict(ring, None, known)
    if reason is not None:
        raise RotationRefusedError(f"the key ring file does not match the database: {reason}")
    newer = [v for v in known if v > ring.active]
    ahead = [r for r in await keys_repo.live_replicas(conn, window) if r.active > ring.active]
    if newer or ahead:
        seen = max([*newer, *(r.active for r in ahead)])
        raise RotationRefusedError(
            f"key version {seen} already exists (this file's active version is "
            f"{ring.active}): the file is a stale copy; use the current key ring"
        )


def lagging(replicas: list[ReplicaRing], ring: KeyRing, needed: int) -> list[str]:
    """Live replicas that would break the step: an active version below ``needed``,
    or a check value that differs from this ring's for the same version."""
    found = []
    for replica in replicas:
        forked = [v for v, c in replica.checks.items() if ring.checks.get(v, c) != c]
        if forked:
            found.append(f"replica {replica.replica_id} holds a different key version {forked[0]}")
        elif replica.active < needed:
            found.append(f"replica {replica.replica_id} holds active key version {replica.active}")
    return found


async def refuse_lagging(
    conn: Executor, ring: KeyRing, needed: int, window: float, step: str
) -> None:
    found = lagging(await keys_repo.live_replicas(conn, window), ring, needed)
    if found:
        raise RotationRefusedError(
            f"{step} refused: {'; '.join(found)} (needs {needed}); "
            "wait until it reloads the key ring, or stop it"
        )


async def rotate_key(
    path: Path, pool: asyncpg.Pool | None, window: float = REPLICA_WINDOW_SECONDS
) -> int:
    """Add a fresh KEK and make it active; returns its version. Replicas pick it up.

    Without a pool (``--offline``: no database yet) only the file lock guards it."""
    with keyring_lock(path):
        base = load_keyring_file(path)
        rotated = base.rotated()
        check = rotated.checks[rotated.active]
        if pool is not None:
            await check_against_database(pool, base, window)
            if await keys_repo.claim_kek_version(pool, rotated.active, check) != check:
                raise RotationRefusedError(
                    f"key version {rotated.active} was just made by another rotation; "
                    "use its key ring file"
                )
        try:
            save_keyring(path, rotated)
        except OSError:
            if pool is not None:
                await keys_repo.release_kek_version(pool, rotated.active, check)
            raise
    return rotated.active


async def pending_rewrap(pool: asyncpg.Pool, envelope: Envelope) -> int:
    """Credentials still sealed under a KEK older than the active one."""
    return (await keys_repo.count_below(pool, envelope.ring.active)).credentials


async def rewrap_batch(pool: asyncpg.Pool, envelope: Envelope, batch_size: int) -> int:
    """Re-encrypt one batch under the active KEK; returns how many were moved."""
    async with pool.acquire() as conn, conn.transaction():
        secrets = await keys_repo.stale_secrets(conn, envelope.ring.active, batch_size)
        per_org = Counter(secret.row.org_id for secret in secrets)
        keys: dict[str, DataKey] = {}
        for org_id, count in per_org.items():
            keys[org_id] = await current_data_key(conn, envelope, org_id, encryptions=count)
        resealed = []
        for secret in secrets:
            row = secret.row
            plaintext = decrypt(envelope, secret)
            sealed = envelope.seal_credential(
                keys[row.org_id], row.org_id, row.id, row.version, plaintext
            )
            resealed.append((row.id, sealed))
        await keys_repo.reseal(conn, resealed)
    return len(secrets)


async def rewrap(
    pool: asyncpg.Pool,
    envelope: Envelope,
    *,
    batch_size: int = 500,
    on_batch: Callable[[int], None] = lambda _: None,
    window: float = REPLICA_WINDOW_SECONDS,
) -> tuple[int, int]:
    """Move every credential to the active KEK, then drop data keys nothing uses.

    Returns (credentials moved, data keys dropped). The drop is refused
    (``RotationRefusedError``, after the moves are committed) while a live
    replica still holds an older ring: it may still write with those keys."""
    await check_against_database(pool, envelope.ring, window)
    moved = 0
    while swept := await rewrap_batch(pool, envelope, batch_size):
        moved += swept
        on_batch(swept)
    active = envelope.ring.active
    try:
        await refuse_lagging(pool, envelope.ring, active, window, "dropping unused data keys")
    except RotationRefusedError as exc:
        raise RotationRefusedError(f"rewrapped {moved} credential(s); {exc}") from None
    async with pool.acquire() as conn:
        dropped = await keys_repo.drop_unused_data_keys(conn, active)
    return moved, dropped


async def set_min_version(
    pool: asyncpg.Pool, path: Path, version: int, window: float = REPLICA_WINDOW_SECONDS
) -> None:
    """Raise ``minDecryptVersion``: refused while anything is still under an older KEK
    or a live replica holds an older ring.

    One transaction: raising the fence first waits for writers that picked a
    data key (they hold the fence row shared) and holds new ones off, so the
    counts below cannot miss a write that lands before the file is replaced."""
    with keyring_lock(path):
        ring = load_keyring_file(path)
        try:
            raised = ring.with_min_decrypt_version(version)
        except KeyRingError as exc:
            raise RotationRefusedError(str(exc)) from None
        async with pool.acquire() as conn, conn.transaction():
            await keys_repo.raise_fence(conn, version)
            await check_against_database(conn, ring, window)
            await refuse_lagging(conn, ring, version, window, "set-min-version")
            below = await keys_repo.count_below(conn, version)
            if below.credentials or below.data_keys:
                raise RotationRefusedError(_still_below(below, version))
            save_keyring(path, raised)


def _still_below(below: keys_repo.Below, version: int) -> str:
    """Why set-min-version is refused, and what to do: rewrap, or wait for hand-offs."""
    message = (
        f"{below.credentials} credential(s) and {below.data_keys} data key(s) still use key "
        f"versions below {version}"
    )
    held = below.held_by_handoffs
    if held:
        message += (
            f"; {held} of the data keys are kept for revocation hand-offs of deleted "
            "credentials, taken by the OAuth broker or purged within "
            "VAULT_REVOCATION_HANDOFF_SECONDS"
        )
    if below.credentials or below.data_keys > held:
        return f"{message}; run rewrap first"
    return f"{message}; retry once they are gone, after a rewrap to drop their data keys"
