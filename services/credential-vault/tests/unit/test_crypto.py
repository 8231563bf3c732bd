"""Key ring (versions, minimum, file round trip, reload) and envelope encryption (AAD binding)."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
from credential_vault import crypto
from credential_vault.crypto import DecryptionError, Envelope, Sealed
from credential_vault.keyring import (
    KeyRing,
    KeyRingError,
    KeyStore,
    generate_keyring_file,
    load_keyring_file,
    save_keyring,
)


class TestKeyRing:
    def test_rotation_adds_an_active_version_and_keeps_the_old(self) -> None:
        ring = KeyRing.generate().rotated()
        assert ring.active == 2
        assert ring.kek(1) != ring.kek(2)

    def test_minimum_refuses_older_versions(self) -> None:
        ring = KeyRing.generate().rotated().with_min_decrypt_version(2)
        with pytest.raises(KeyRingError, match="below minDecryptVersion"):
            ring.kek(1)
        with pytest.raises(KeyRingError):
            ring.with_min_decrypt_version(3)

    def test_file_round_trip_is_private_and_refuses_overwrite(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path)
        assert load_keyring_file(path) == ring
        assert path.stat().st_mode & 0o777 == 0o600
        with pytest.raises(FileExistsError):
            generate_keyring_file(path)

    @pytest.mark.parametrize(
        "text",
        [
            "not json",
            '{"active": 2, "keys": {"1": "AAAA"}}',
            '{"active": 1, "keys": {"1": "c2hvcnQ="}}',
            '{"active": 1, "minDecryptVersion": 2, "keys": {"1": "c2hvcnQ="}}',
        ],
    )
    def test_malformed_rings_are_refused(self, text: str) -> None:
        with pytest.raises(KeyRingError):
            KeyRing.from_json(text)

    def test_repr_shows_no_key_material(self) -> None:
        ring = KeyRing.generate()
        assert ring.kek(1).hex() not in repr(ring)
        assert repr(ring.kek(1)) not in repr(ring)


class TestKeyStore:
    def test_unconfigured_store_is_not_loaded(self) -> None:
        store = KeyStore(None, None)
        with pytest.raises(KeyRingError, match="no key ring configured"):
            store.load()
        assert not store.loaded

    def test_reloads_when_the_file_is_replaced(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path)
        store = KeyStore(path, None)
        store.load()
        assert not store.reload_if_changed()
        save_keyring(path, ring.rotated())
        assert store.reload_if_changed()
        assert store.ring.active == 2

    def test_inline_ring_never_reloads(self) -> None:
        store = KeyStore(None, KeyRing.generate().to_json())
        store.load()
        assert store.ring.active == 1
        assert not store.reload_if_changed()


def _envelope(ring: KeyRing) -> tuple[Envelope, KeyStore]:
    store = KeyStore(None, ring.to_json())
    store.load()
    return Envelope(store), store


class TestEnvelope:
    def test_seal_and_open(self) -> None:
        envelope, _ = _envelope(KeyRing.generate())
        key = envelope.unwrap(envelope.new_data_key("org-a", 1))
        cid = uuid4()
        sealed = envelope.seal_credential(key, "org-a", cid, 3, b"secret")
        assert b"secret" not in sealed.ciphertext
        assert (sealed.dek_version, sealed.kek_version) == (1, 1)
        assert envelope.open_credential(key, sealed, "org-a", cid, 3) == b"secret"

    @pytest.mark.parametrize(
        ("org", "same_id", "version"), [("org-b", True, 3), ("org-a", False, 3), ("org-a", True, 4)]
    )
    def test_moved_ciphertext_fails(self, org: str, same_id: bool, version: int) -> None:
        envelope, _ = _envelope(KeyRing.generate())
        key = envelope.unwrap(envelope.new_data_key("org-a", 1))
        cid = uuid4()
        sealed = envelope.seal_credential(key, "org-a", cid, 3, b"secret")
        with pytest.raises(DecryptionError):
            envelope.open_credential(key, sealed, org, cid if same_id else uuid4(), version)

    def test_wrapped_data_key_is_bound_to_its_org(self) -> None:
        envelope, _ = _envelope(KeyRing.generate())
        stored = envelope.new_data_key("org-a", 1)
        moved = type(stored)("org-b", 1, stored.kek_version, stored.wrapped)
        with pytest.raises(DecryptionError):
            envelope.unwrap(moved)

    def test_tampered_ciphertext_fails(self) -> None:
        envelope, _ = _envelope(KeyRing.generate())
        key = envelope.unwrap(envelope.new_data_key("org-a", 1))
        cid = uuid4()
        sealed = envelope.seal_credential(key, "org-a", cid, 1, b"secret")
        flipped = bytes([sealed.ciphertext[-1] ^ 1])
        tampered = Sealed(1, 1, sealed.ciphertext[:-1] + flipped)
        with pytest.raises(DecryptionError):
            envelope.open_credential(key, tampered, "org-a", cid, 1)

    def test_retired_kek_is_refused_even_when_cached(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path)
        store = KeyStore(path, None)
        store.load()
        envelope = Envelope(store)
        stored = envelope.new_data_key("org-a", 1)
        envelope.unwrap(stored)
        save_keyring(path, ring.rotated().with_min_decrypt_version(2))
        store.reload_if_changed()
        with pytest.raises(KeyRingError, match="below minDecryptVersion"):
            envelope.unwrap(stored)

    def test_unknown_kek_version_triggers_a_reload(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path)
        stale = KeyStore(path, None)
        stale.load()
        save_keyring(path, ring.rotated())
        fresh = KeyStore(path, None)
        fresh.load()
        stored = Envelope(fresh).new_data_key("org-a", 1)
        assert stored.kek_version == 2
        assert Envelope(stale).unwrap(stored).kek_version == 2

    def test_nonces_never_repeat_over_many_seals(self) -> None:
        nonces, bodies = _seal_many(2000)
        assert len(set(nonces)) == len(nonces)
        assert len(set(bodies)) == len(bodies)  # same plaintext and AAD: still all different

    def test_the_uniqueness_check_catches_a_fixed_nonce(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(crypto.os, "urandom", lambda n: bytes(n))
        nonces, bodies = _seal_many(3)
        assert len(set(nonces)) == 1
        assert len(set(bodies)) == 1

    def test_the_stored_nonce_is_the_one_used(self) -> None:
        envelope, _ = _envelope(KeyRing.generate())
        key = envelope.unwrap(envelope.new_data_key("org-a", 1))
        cid = uuid4()
        sealed = envelope.seal_credential(key, "org-a", cid, 1, b"x")
        nonce = bytearray(sealed.ciphertext[: crypto.NONCE_BYTES])
        nonce[0] ^= 1
        moved = Sealed(1, 1, bytes(nonce) + sealed.ciphertext[crypto.NONCE_BYTES :])
        with pytest.raises(DecryptionError):
            envelope.open_credential(key, moved, "org-a", cid, 1)


def _seal_many(count: int) -> tuple[list[bytes], list[bytes]]:
    """Seal the same plaintext for the same row ``count`` times: (nonces, ciphertexts)."""
    envelope, _ = _envelope(KeyRing.generate())
    key = envelope.unwrap(envelope.new_data_key("org-a", 1))
    cid = uuid4()
    sealed = [envelope.seal_credential(key, "org-a", cid, 1, b"x") for _ in range(count)]
    split = crypto.NONCE_BYTES
    return [s.ciphertext[:split] for s in sealed], [s.ciphertext[split:] for s in sealed]
