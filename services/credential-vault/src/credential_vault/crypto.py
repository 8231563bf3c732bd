"""AES-256-GCM envelope encryption: KEK (key ring) -> data key per org -> credential data.

Every ciphertext is ``nonce (12 bytes) || AES-GCM output`` with additional
authenticated data (AAD) naming where it belongs:

* a wrapped data key is bound to its org and data-key version, so it cannot be
  copied into another org's row;
* credential data is bound to org id, credential id and credential version, so
  a ciphertext moved to another row, org or version fails to decrypt.

Unwrapped data keys are cached per (org, version, wrapped bytes): a cache hit
costs one dict lookup, and a replaced key can never be served stale.

With random 96-bit nonces one key may seal at most 2^32 messages (NIST SP
800-38D); ``DataKeyPolicy`` retires an org's data key well before that, or
after an age, and ``Envelope`` keeps this process's reserved share of a key's
encryptions (``datakeys`` reserves them in blocks in the database).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from credential_vault.keyring import KeyRing, KeyRingError, KeyStore

NONCE_BYTES = 12
DEK_BYTES = 32


class DecryptionError(Exception):
    """Authentication failed: wrong key, or the ciphertext was moved or altered."""


@dataclass(frozen=True, slots=True)
class WrappedDataKey:
    """A data key as stored: encrypted under KEK ``kek_version`` whose KCV is
    ``kek_check`` (None on rows written before KCVs existed)."""

    org_id: str
    version: int
    kek_version: int
    wrapped: bytes
    kek_check: str | None = None


@dataclass(frozen=True, slots=True)
class DataKeyPolicy:
    """When an org's data key stops sealing and the next version is minted.

    ``max_encryptions`` defaults to 2^30, a quarter of the 2^32 random-nonce limit;
    ``max_age_days`` (None: no age limit) bounds how long one key is used.
    ``reservation_block``: encryptions a process reserves per database round trip."""

    max_encryptions: int = 2**30
    max_age_days: float | None = 90.0
    reservation_block: int = 1024

    @property
    def block(self) -> int:
        """The reservation size: small against the limit, so replicas share it finely."""
        return max(1, min(self.reservation_block, self.max_encryptions // 64))


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped data key, ready to seal and open credential data."""

    version: int
    kek_version: int
    cipher: AESGCM


@dataclass(frozen=True, slots=True)
class Sealed:
    """Encrypted credential data and the key versions it was made with."""

    dek_version: int
    kek_version: int
    ciphertext: bytes


def _aad(*parts: str | int) -> bytes:
    return json.dumps(["plugboard-vault", *parts], separators=(",", ":")).encode()


def credential_aad(org_id: str, credential_id: UUID, version: int) -> bytes:
    return _aad("credential", org_id, str(credential_id), version)


def data_key_aad(org_id: str, version: int) -> bytes:
    return _aad("data-key", org_id, version)


def seal(cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, plaintext, aad)


def open_sealed(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("ciphertext failed authentication") from None


class Envelope:
    """Seals and opens credential data with the key ring of a ``KeyStore``."""

    def __init__(
        self, keys: KeyStore, cache_size: int = 10_000, policy: DataKeyPolicy | None = None
    ) -> None:
        self._keys = keys
        self._cache: OrderedDict[tuple[str, int, bytes], AESGCM] = OrderedDict()
        self._cache_size = cache_size
        self.policy = policy or DataKeyPolicy()
        # org -> (data key version, encryptions left); bounded like the cache: a dropped
        # entry only wastes its reserved remainder (counted high, never low)
        self._budget: OrderedDict[str, tuple[int, int]] = OrderedDict()

    @property
    def keys(self) -> KeyStore:
        return self._keys

    def take_encryption(self, org_id: str, version: int, count: int = 1) -> bool:
        """Use ``count`` encryptions this process reserved for the org's data key
        ``version``; False when fewer are left (reserve a block first)."""
        held, left = self._budget.get(org_id, (version, 0))
        if held != version or left < count:
            return False
        self._budget[org_id] = (version, left - count)
        return True

    def grant_encryptions(self, org_id: str, version: int, count: int) -> None:
        """Record a reserved block; a newer data key replaces an older key's remainder."""
        self._budget[org_id] = (version, count)
        self._budget.move_to_end(org_id)
        if len(self._budget) > self._cache_size:
            self._budget.popitem(last=False)

    @property
    def ring(self) -> KeyRing:
        return self._keys.ring

    def refresh(self) -> None:
        """Pick up a rotated key ring file before minting a data key (cheap: one stat)."""
        with contextlib.suppress(KeyRingError):
            self._keys.reload_if_changed()

    def new_data_key(self, org_id: str, version: int) -> WrappedDataKey:
        """A fresh random data key for ``org_id``, wrapped by the active KEK."""
        ring = self._keys.ring
        kek = AESGCM(ring.kek(ring.active))
        wrapped = seal(kek, AESGCM.generate_key(DEK_BYTES * 8), data_key_aad(org_id, version))
        return WrappedDataKey(org_id, version, ring.active, wrapped, ring.checks[ring.active])

    def unwrap(self, stored: WrappedDataKey) -> DataKey:
        """Unwrap (or take from the cache); refuses KEK versions below the minimum."""
        ring = self._ring_knowing(stored.kek_version)
        ring.kek(stored.kek_version)  # raises for retired versions, cached or not
        if stored.kek_check is not None and ring.checks[stored.kek_version] != stored.kek_check:
            raise KeyRingError(
                f"data key was wrapped by another key version {stored.kek_version} "
                "(forked key ring)"
            )
        key = (stored.org_id, stored.version, stored.wrapped)
        cipher = self._cache.get(key)
        if cipher is None:
            kek = AESGCM(ring.kek(stored.kek_version))
            raw = open_sealed(kek, stored.wrapped, data_key_aad(stored.org_id, stored.version))
            cipher = self._remember(key, AESGCM(raw))
        else:
            self._cache.move_to_end(key)
        return DataKey(stored.version, stored.kek_version, cipher)

    def seal_credential(
        self, key: DataKey, org_id: str, credential_id: UUID, version: int, plaintext: bytes
    ) -> Sealed:
        aad = credential_aad(org_id, credential_id, version)
        return Sealed(key.version, key.kek_version, seal(key.cipher, plaintext, aad))

    def open_credential(
        self, key: DataKey, sealed: Sealed, org_id: str, credential_id: UUID, version: int
    ) -> bytes:
        if sealed.dek_version != key.version:
            raise DecryptionError("ciphertext names another data key")
        self._keys.ring.kek(sealed.kek_version)  # refuses ciphertext made under a retired KEK
        return open_sealed(
            key.cipher, sealed.ciphertext, credential_aad(org_id, credential_id, version)
        )

    def _ring_knowing(self, kek_version: int) -> KeyRing:
        """The ring, reloaded once if it does not know ``kek_version`` (rotated elsewhere)."""
        if kek_version not in self._keys.ring.keys:
            self.refresh()
        return self._keys.ring

    def _remember(self, key: tuple[str, int, bytes], cipher: AESGCM) -> AESGCM:
        self._cache[key] = cipher
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return cipher
