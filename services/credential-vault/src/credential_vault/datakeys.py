"""Data keys against the database: the current key of an org, opening stored secrets,
and keeping this replica's key ring in step with the database.

An org's current data key is its newest version. The next write mints a new
version under the active KEK when that one is wrapped by an older KEK (the ring
was rotated), is below the fence (``set-min-version``), has sealed its share of
messages (``DataKeyPolicy.max_encryptions``) or is older than
``max_age_days``; ``rewrap`` moves old ciphertext over. Encryptions are counted
in the database in blocks a replica reserves, so the count costs one UPDATE per
block, not per write.

Failures are domain errors: ``Unavailable`` (503) while the ring is not loaded
or a key cannot be opened, ``CredentialUndecryptableError`` (500) when a ciphertext
fails authentication. Their texts name nothing secret.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import DomainError, Unavailable
from plugboard_servicekit.logging import get_logger
from prometheus_client import Counter, Gauge

from credential_vault import key_repository as keys_repo
from credential_vault.crypto import (
    DataKey,
    DecryptionError,
    Envelope,
    Sealed,
    WrappedDataKey,
    data_key_aad,
    open_sealed,
)
from credential_vault.key_repository import KeyPick, StoredDataKey
from credential_vault.keyring import KeyRingError, KeyRingNotLoadedError, KeyStore
from credential_vault.repository import SecretRow

log = get_logger(__name__)

_ATTEMPTS = 5

DATA_KEYS_MINTED = Counter(
    "plugboard_vault_data_keys_minted_total",
    "Data keys minted, by why the previous one stopped sealing (first, kek_rotated,"
    " fence, expired, used_up, dropped).",
    ["reason"],
)
KEYRING_ACTIVE_VERSION = Gauge(
    "plugboard_vault_keyring_active_version", "The active KEK version this replica holds."
)
KEYRING_REFUSED = Gauge(
    "plugboard_vault_keyring_refused",
    "1 while this replica's configured key ring is refused or not loaded (see /readyz).",
)


class KeyUnavailable(Unavailable):
    """The credential's key cannot be used: retired, unknown, or from a forked ring."""

    title = "Key version unavailable"


class CredentialUndecryptableError(DomainError):
    """The stored ciphertext failed authentication (altered, or moved to another row)."""

    status = 500
    title = "Credential cannot be decrypted"
    permanent = True


async def current_data_key(
    conn: Connection, envelope: Envelope, org_id: str, *, encryptions: int = 1
) -> DataKey:
    """The org's data key for ``encryptions`` new seals, minting the next version when
    the newest is missing, old, used up or below the fence.

    Run inside the writer's transaction: the pick locks the fence row (shared)
    and the key row (key share) until commit. Two writers minting at once
    collide on the primary key; the loser takes the winner's key.
    """
    envelope.refresh()
    try:
        for _ in range(_ATTEMPTS):
            pick = await keys_repo.pick_data_key(conn, org_id, envelope.policy.max_age_days)
            ring = envelope.ring
            if ring.active < pick.fence:
                raise KeyRingError(
                    f"key ring active version {ring.active} is below the fence {pick.fence}"
                )
            newest = pick.newest
            reason = (
                "first" if newest is None else await _use(conn, envelope, pick, newest, encryptions)
            )
            if reason is None:
                assert newest is not None
                return envelope.unwrap(newest.key)
            minted = await _mint(conn, envelope, org_id, newest, encryptions, reason)
            if minted is not None:
                return envelope.unwrap(minted)
        raise KeyRingError("data key contention: no usable data key after retries")
    except KeyRingError as exc:
        raise key_unavailable(exc) from None


def _retired(envelope: Envelope, pick: KeyPick, newest: StoredDataKey) -> str | None:
    """Why ``newest`` may not seal any more (a metric label), or None."""
    key = newest.key
    if key.kek_version < envelope.ring.active:
        return "kek_rotated"
    if key.kek_version < pick.fence:
        return "fence"
    if newest.expired:
        return "expired"
    if newest.encryptions >= envelope.policy.max_encryptions:
        return "used_up"
    return None


async def _use(
    conn: Connection, envelope: Envelope, pick: KeyPick, newest: StoredDataKey, count: int
) -> str | None:
    """Take ``count`` encryptions of ``newest``: None when taken, else why it cannot."""
    if (reason := _retired(envelope, pick, newest)) is not None:
        return reason
    key, policy = newest.key, envelope.policy
    if envelope.take_encryption(key.org_id, key.version, count):
        return None
    block = max(policy.block, count)
    total = await keys_repo.reserve_encryptions(conn, key.org_id, key.version, block)
    if total is None:
        return "dropped"
    if total > policy.max_encryptions:
        return "used_up"
    envelope.grant_encryptions(key.org_id, key.version, block - count)
    return None


async def _mint(
    conn: Connection,
    envelope: Envelope,
    org_id: str,
    newest: StoredDataKey | None,
    count: int,
    reason: str,
) -> WrappedDataKey | None:
    """Insert the next version under the active KEK; None when another writer won."""
    fresh = envelope.new_data_key(org_id, 1 if newest is None else newest.key.version + 1)
    block = max(envelope.policy.block, count)
    if not await keys_repo.insert_data_key(conn, fresh, encryptions=block):
        return None
    envelope.grant_encryptions(org_id, fresh.version, block - count)
    DATA_KEYS_MINTED.labels(reason).inc()
    log.info(
        "data_key_minted",
        reason=reason,
        org_id=org_id,
        version=fresh.version,
        kek_version=fresh.kek_version,
        previous_encryptions=None if newest is None else newest.encryptions,
    )
    return fresh


def decrypt(envelope: Envelope, secret: SecretRow) -> bytes:
    """The plaintext of a stored credential; ``KeyRingError`` or ``DecryptionError``."""
    row = secret.row
    key = envelope.unwrap(secret.data_key)
    return envelope.open_credential(key, secret.sealed, row.org_id, row.id, row.version)


def open_secret(envelope: Envelope, secret: SecretRow) -> bytes:
    """``decrypt`` for a request: failures become domain errors that reveal nothing."""
    row = secret.row
    return open_sealed_for(envelope, secret.data_key, secret.sealed, row.id, row.version)


def open_sealed_for(
    envelope: Envelope, data_key: WrappedDataKey, sealed: Sealed, credential_id: UUID, version: int
) -> bytes:
    """Open ciphertext bound to (the data key's org, ``credential_id``, ``version``): a
    credential's, or a revocation hand-off's (the same ciphertext, moved)."""
    try:
        key = envelope.unwrap(data_key)
    except (KeyRingError, DecryptionError) as exc:
        raise key_unavailable(exc, credential_id) from None
    try:
        return envelope.open_credential(key, sealed, data_key.org_id, credential_id, version)
    except KeyRingError as exc:
        raise key_unavailable(exc, credential_id) from None
    except DecryptionError:
        log.error("credential_decryption_failed", credential_id=str(credential_id))
        raise CredentialUndecryptableError("The stored ciphertext failed authentication.") from None


def key_unavailable(exc: Exception, credential_id: UUID | None = None) -> Unavailable:
    """503 until the key ring loads; 503 ``Key version unavailable`` for a key this
    ring cannot open (retired, unknown, forked): an operator must act, then it works."""
    if isinstance(exc, KeyRingNotLoadedError):
        return Unavailable("The key ring is not loaded yet.", retry_after=5)
    log.error("key_version_unavailable", credential_id=str(credential_id), reason=str(exc))
    return KeyUnavailable("The credential's key is not usable.")


def default_replica_id() -> str:
    """Host, pid and a random tag: unique per app instance (two in one process, as in
    tests, must not share a heartbeat row), readable in a refusal message."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def load_keyring(pool: asyncpg.Pool, keys: KeyStore) -> bool:
    """Verify against the database's KCVs and (re)load a changed ring file.

    True when a new ring was adopted. A refused or unreadable file is logged and
    kept out; the ring already loaded keeps serving and ``keys.status()`` says why.
    """
    known = await keys_repo.kek_checks(pool)
    keys.know_checks(known)
    try:
        adopted = keys.reload_if_changed()
    except KeyRingError as exc:
        log.warning("keyring_refused", reason=str(exc), serving=keys.loaded)
        return False
    if adopted:
        ring = keys.ring
        log.info("keyring_loaded", active=ring.active, min=ring.min_decrypt_version)
    if keys.loaded:
        await _backfill_legacy_checks(pool, keys, known)
    return adopted


def _report_metrics(keys: KeyStore) -> None:
    KEYRING_REFUSED.set(0 if keys.status() is None else 1)
    if keys.loaded:
        KEYRING_ACTIVE_VERSION.set(keys.ring.active)


async def _backfill_legacy_checks(
    pool: asyncpg.Pool, keys: KeyStore, known: dict[int, str]
) -> None:
    """Data keys from before check values existed: once one under a version opens with
    this ring's key, that key's check is registered and stamped on all of them."""
    ring = keys.ring
    for version in sorted(set(ring.keys) - set(known)):
        if version < ring.min_decrypt_version:
            continue
        sample = await keys_repo.legacy_data_key(pool, version)
        if sample is None:
            continue
        try:
            aad = data_key_aad(sample.org_id, sample.version)
            open_sealed(AESGCM(ring.kek(version)), sample.wrapped, aad)
        except DecryptionError:
            log.error("keyring_legacy_data_key_mismatch", kek_version=version)
            continue
        await keys_repo.backfill_checks(pool, version, ring.checks[version])


async def heartbeat(pool: asyncpg.Pool, replica_id: str, keys: KeyStore) -> None:
    """Report the ring this replica holds (nothing while none is loaded), in the
    database for the rotation fences and in metrics for alerts."""
    _report_metrics(keys)
    if keys.loaded:
        ring = keys.ring
        await keys_repo.heartbeat(
            pool, replica_id, ring.active, ring.min_decrypt_version, ring.checks
        )


async def report_ring_version(
    pool: asyncpg.Pool, replica_id: str, keys: KeyStore, interval: float = 5.0
) -> None:
    """Background task: every ``interval`` seconds load a changed ring (verified) and
    report the one held. A database error is logged and retried next round."""
    while True:
        try:
            await load_keyring(pool, keys)
            await heartbeat(pool, replica_id, keys)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("keyring_heartbeat_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)
