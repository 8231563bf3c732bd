"""Key-check values, refusal of forked or backward rings (the old ring keeps serving),
the ring file's lock and the mode of its temporary file."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import threading
from pathlib import Path

import pytest
from credential_vault.crypto import Envelope
from credential_vault.keyring import (
    KeyRing,
    KeyRingError,
    KeyRingRefusedError,
    KeyStore,
    generate_keyring_file,
    key_check,
    keyring_lock,
    load_keyring_file,
    save_keyring,
)
from credential_vault.rotation import rotate_key


def _store(path: Path) -> KeyStore:
    store = KeyStore(path, None)
    store.load()
    return store


class TestKeyChecks:
    def test_every_key_has_a_distinct_check_in_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path).rotated()
        save_keyring(path, ring)
        checks = json.loads(path.read_text())["checks"]
        assert checks == {"1": key_check(ring.keys[1]), "2": key_check(ring.keys[2])}
        assert checks["1"] != checks["2"]
        assert ring.keys[1].hex()[:16] not in checks.values()

    def test_a_key_edited_under_its_check_is_refused(self, tmp_path: Path) -> None:
        ring, other = KeyRing.generate(), KeyRing.generate()
        body = json.loads(ring.to_json())
        body["keys"]["1"] = json.loads(other.to_json())["keys"]["1"]
        with pytest.raises(KeyRingError, match="does not match its check value"):
            KeyRing.from_json(json.dumps(body))

    def test_a_ring_written_before_checks_still_loads(self) -> None:
        ring = KeyRing.generate()
        body = json.loads(ring.to_json())
        del body["checks"]
        assert KeyRing.from_json(json.dumps(body)).checks == ring.checks


class TestRefusedRings:
    def test_a_forked_file_is_refused_and_the_old_ring_keeps_serving(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        base = generate_keyring_file(path)
        mine, theirs = base.rotated(), base.rotated()  # two "v2" from the same base
        save_keyring(path, mine)
        store = _store(path)
        envelope = Envelope(store)
        sealed_before = envelope.new_data_key("org-a", 1)
        assert store.status() is None

        save_keyring(path, theirs)
        with pytest.raises(KeyRingRefusedError, match="key version 2 changed"):
            store.reload_if_changed()
        assert store.ring == mine
        assert envelope.unwrap(sealed_before).kek_version == 2
        status = store.status()
        assert status is not None
        assert "key version 2 changed" in status
        assert "serving active version 2" in status
        assert not store.reload_if_changed()  # not re-read until the file changes again

        save_keyring(path, mine.rotated())
        assert store.reload_if_changed()
        assert (store.ring.active, store.status()) == (3, None)

    def test_active_going_down_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        base = generate_keyring_file(path)
        save_keyring(path, base.rotated())
        store = _store(path)
        save_keyring(path, base)  # a stale copy of the file
        with pytest.raises(KeyRingRefusedError, match="went down from 2 to 1"):
            store.reload_if_changed()
        assert store.ring.active == 2

    def test_removing_a_decryptable_version_is_refused_but_a_retired_one_is_not(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path).rotated()
        save_keyring(path, ring)
        store = _store(path)
        without_v1 = KeyRing({2: ring.keys[2]}, active=2, min_decrypt_version=1)
        save_keyring(path, without_v1)
        with pytest.raises(KeyRingRefusedError, match="key version 1 vanished"):
            store.reload_if_changed()
        save_keyring(path, KeyRing({2: ring.keys[2]}, active=2, min_decrypt_version=2))
        assert store.reload_if_changed()

    def test_a_ring_contradicting_the_database_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        base = generate_keyring_file(path)
        used = base.rotated()  # the v2 the database's data keys were wrapped with
        save_keyring(path, base.rotated())  # another v2
        store = KeyStore(path, None)
        store.know_checks(used.checks)
        with pytest.raises(KeyRingRefusedError, match="does not match the database"):
            store.load()
        assert not store.loaded
        assert (store.status() or "").startswith("not loaded: key version 2 does not match")

    def test_a_loaded_ring_contradicting_the_database_stops_serving(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring_file(path)
        store = _store(path)
        store.know_checks({1: key_check(os.urandom(32))})
        assert not store.loaded
        assert "does not match the database" in (store.status() or "")


class TestRingFile:
    def test_a_planted_wide_temp_file_does_not_widen_the_ring(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        ring = generate_keyring_file(path)
        planted = tmp_path / f".{path.name}.tmp"  # the old fixed temporary name
        planted.write_text("planted")
        planted.chmod(0o666)
        old = os.umask(0)  # even with nothing masked, the ring stays 0600
        try:
            save_keyring(path, ring.rotated())
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == 0o600
        assert planted.read_text() == "planted"
        assert load_keyring_file(path).active == 2

    def test_rotation_waits_for_the_ring_lock(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        generate_keyring_file(path)
        done = threading.Event()

        def rotate() -> None:
            asyncio.run(rotate_key(path, None))
            done.set()

        with keyring_lock(path):
            worker = threading.Thread(target=rotate)
            worker.start()
            assert not done.wait(0.5)  # held off while another command holds the lock
            assert load_keyring_file(path).active == 1
        worker.join()
        assert load_keyring_file(path).active == 2

    def test_the_lock_is_an_flock_on_a_private_file(self, tmp_path: Path) -> None:
        path = tmp_path / "keyring.json"
        with keyring_lock(path):
            lock = tmp_path / ".keyring.json.lock"
            assert lock.stat().st_mode & 0o777 == 0o600
            fd = os.open(lock, os.O_RDWR)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(fd)
