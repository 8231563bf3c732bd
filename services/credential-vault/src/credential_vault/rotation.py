"""Key rotation: add a KEK version, rewrap everything onto it, retire the old versions.

``rewrap`` runs online next to live replicas: it works in small transactions,
each locking a batch of credentials sealed under an older KEK, re-encrypting
their (unchanged) data under the org's current data key, which is minted under
the active KEK when needed. Credential versions do not change, so no event and
no audit row is written; a crash loses nothing and a rerun continues where the
last committed batch ended. Plaintext only exists inside this process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg

from credential_vault import key_repository as keys_repo
from credential_vault.crypto import DataKey, Envelope
from credential_vault.datakeys import current_data_key, decrypt
from credential_vault.keyring import KeyRingError, load_keyring_file, save_keyring


class RotationRefusedError(Exception):
    """The operation would make stored data unreadable; the message says what remains."""


def rotate_key(path: Path) -> int:
    """Add a fresh KEK and make it active; returns its version. Replicas pick it up."""
    ring = load_keyring_file(path).rotated()
    save_keyring(path, ring)
    return ring.active


async def pending_rewrap(pool: asyncpg.Pool, envelope: Envelope) -> int:
    """Credentials still sealed under a KEK older than the active one."""
    credentials, _ = await keys_repo.count_below(pool, envelope.ring.active)
    return credentials


async def rewrap_batch(pool: asyncpg.Pool, envelope: Envelope, batch_size: int) -> int:
    """Re-encrypt one batch under the active KEK; returns how many were moved."""
    async with pool.acquire() as conn, conn.transaction():
        secrets = await keys_repo.stale_secrets(conn, envelope.ring.active, batch_size)
        keys: dict[str, DataKey] = {}
        resealed = []
        for secret in secrets:
            row = secret.row
            if row.org_id not in keys:
                keys[row.org_id] = await current_data_key(conn, envelope, row.org_id)
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
) -> tuple[int, int]:
    """Move every credential to the active KEK, then drop data keys nothing uses.

    Returns (credentials moved, data keys dropped).
    """
    moved = 0
    while swept := await rewrap_batch(pool, envelope, batch_size):
        moved += swept
        on_batch(swept)
    async with pool.acquire() as conn:
        dropped = await keys_repo.drop_unused_data_keys(conn, envelope.ring.active)
    return moved, dropped


async def set_min_version(pool: asyncpg.Pool, path: Path, version: int) -> None:
    """Raise ``minDecryptVersion``: refused while anything is still under an older KEK."""
    ring = load_keyring_file(path)
    try:
        raised = ring.with_min_decrypt_version(version)
    except KeyRingError as exc:
        raise RotationRefusedError(str(exc)) from None
    credentials, data_keys = await keys_repo.count_below(pool, version)
    if credentials or data_keys:
        raise RotationRefusedError(
            f"{credentials} credential(s) and {data_keys} data key(s) still use key versions "
            f"below {version}; run rewrap first"
        )
    save_keyring(path, raised)
