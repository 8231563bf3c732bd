"""Data keys against the database: the current key of an org, and opening stored secrets.

An org's current data key is its newest version. When that version is wrapped
by a KEK older than the active one (the ring was rotated), the next write mints
a new version under the active KEK, so fresh ciphertext never depends on a key
the operator is retiring; ``rewrap`` moves the old ciphertext over.
"""

from __future__ import annotations

from uuid import UUID

from plugboard_servicekit.db import Connection
from plugboard_servicekit.logging import get_logger
from plugboard_servicekit.problems import ProblemError

from credential_vault import key_repository as keys_repo
from credential_vault.crypto import DataKey, DecryptionError, Envelope
from credential_vault.keyring import KeyRingError, KeyRingNotLoadedError
from credential_vault.repository import SecretRow

log = get_logger(__name__)


async def current_data_key(conn: Connection, envelope: Envelope, org_id: str) -> DataKey:
    """The org's newest data key, minting one under the active KEK when it is missing or old.

    Two writers minting at once collide on the primary key; the loser waits for
    the winner's commit and takes its key.
    """
    stored = await keys_repo.newest_data_key(conn, org_id)
    envelope.refresh()
    try:
        if stored is None or stored.kek_version < envelope.ring.active:
            fresh = envelope.new_data_key(org_id, 1 if stored is None else stored.version + 1)
            if await keys_repo.insert_data_key(conn, fresh):
                stored = fresh
            else:
                stored = await keys_repo.newest_data_key(conn, org_id)
        assert stored is not None
        return envelope.unwrap(stored)
    except KeyRingError as exc:
        raise key_unavailable(exc) from None


def decrypt(envelope: Envelope, secret: SecretRow) -> bytes:
    """The plaintext of a stored credential; ``KeyRingError`` or ``DecryptionError``."""
    row = secret.row
    key = envelope.unwrap(secret.data_key)
    return envelope.open_credential(key, secret.sealed, row.org_id, row.id, row.version)


def open_secret(envelope: Envelope, secret: SecretRow) -> bytes:
    """``decrypt`` for a request: failures become 5xx problems that reveal nothing."""
    row = secret.row
    try:
        return decrypt(envelope, secret)
    except KeyRingError as exc:
        raise key_unavailable(exc, row.id) from None
    except DecryptionError:
        log.error("credential_decryption_failed", credential_id=str(row.id))
        raise ProblemError(
            500, "Credential cannot be decrypted", "The stored ciphertext failed authentication."
        ) from None


def key_unavailable(exc: KeyRingError, credential_id: UUID | None = None) -> ProblemError:
    """503 until the key ring loads; 500 for a retired or unknown key version."""
    if isinstance(exc, KeyRingNotLoadedError):
        return ProblemError(503, "Service Unavailable", "The key ring is not loaded yet.")
    log.error("key_version_unavailable", credential_id=str(credential_id), reason=str(exc))
    return ProblemError(500, "Key version unavailable", "The credential's key is not usable.")
