"""Key rotation against several replicas, at the data-key layer on a real PostgreSQL:
heartbeats fence set-min-version and the data-key drop, set-min-version cannot
interleave with a writer, the drop skips a key a writer holds, a forked ring
cannot store a data key (and reads name it), two rotations from one base cannot
both make "v2", and rewrap takes a row whose data key moved while it waited."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from credential_vault import key_repository as keys_repo
from credential_vault import repository as repo
from credential_vault.crypto import DataKey, Envelope
from credential_vault.datakeys import current_data_key, decrypt, heartbeat, load_keyring
from credential_vault.keyring import (
    KeyRingError,
    KeyStore,
    generate_keyring_file,
    load_keyring_file,
    save_keyring,
)
from credential_vault.rotation import (
    RotationRefusedError,
    rewrap,
    rewrap_batch,
    rotate_key,
    set_min_version,
)
from plugboard_servicekit import db
from plugboard_servicekit.db import Connection
from plugboard_servicekit.errors import Unavailable

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parents[2] / "src" / "credential_vault" / "migrations"


@pytest.fixture
async def pool(postgres_dsn: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(postgres_dsn, fresh_schema, [MIGRATIONS])
    created = await db.create_pool(postgres_dsn, fresh_schema, max_size=6)
    yield created
    await created.close()


def replica(path: Path) -> Envelope:
    """A replica's key store and envelope over ``path`` (its copy of the ring)."""
    keys = KeyStore(path, None)
    keys.load()
    return Envelope(keys)


async def write_credential(conn: Connection, envelope: Envelope, org: str) -> DataKey:
    """What a credential write does with keys: pick (or mint) the data key, seal, insert."""
    key = await current_data_key(conn, envelope, org)
    cid = uuid4()
    sealed = envelope.seal_credential(key, org, cid, 1, b"{}")
    await conn.execute(
        "INSERT INTO credentials (id, org_id, name, type, version, fields_set, dek_version,"
        " kek_version, ciphertext) VALUES ($1, $2, 'n', 'none', 1, '{}', $3, $4, $5)",
        cid,
        org,
        sealed.dek_version,
        sealed.kek_version,
        sealed.ciphertext,
    )
    return key


async def waiting_on_lock(pool: asyncpg.Pool, blocked: asyncio.Task[object]) -> None:
    """Until another session waits on a lock (or ``blocked`` ended early, and says why)."""
    while not blocked.done():
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    blocked.result()
    raise AssertionError("finished instead of waiting for the lock")


@pytest.fixture
def ring_file(tmp_path: Path) -> Path:
    path = tmp_path / "keyring.json"
    generate_keyring_file(path)
    return path


async def test_a_lagging_replica_fences_min_version_and_the_drop(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    stale_copy = tmp_path / "stale.json"
    shutil.copy(ring_file, stale_copy)
    assert await rotate_key(ring_file, pool) == 2
    fresh, stale = replica(ring_file), replica(stale_copy)
    await heartbeat(pool, "replica-fresh", fresh.keys)
    await heartbeat(pool, "replica-stale", stale.keys)
    async with pool.acquire() as conn:
        await write_credential(conn, stale, "org-a")  # still sealing under version 1

    with pytest.raises(
        RotationRefusedError, match="replica replica-stale holds active key version 1"
    ):
        await rewrap(pool, fresh)
    assert await pool.fetchval("SELECT count(*) FROM data_keys WHERE kek_version = 1") == 1
    with pytest.raises(RotationRefusedError, match="replica-stale"):
        await set_min_version(pool, ring_file, 2)

    await pool.execute(
        "UPDATE keyring_replicas SET last_seen = now() - interval '1 hour'"
        " WHERE replica_id = 'replica-stale'"
    )  # gone quiet: no longer live
    assert await rewrap(pool, fresh) == (0, 1)  # moved before the refusal; now dropped
    await set_min_version(pool, ring_file, 2)
    assert load_keyring_file(ring_file).min_decrypt_version == 2


async def test_a_replica_holding_a_forked_ring_is_named(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    fork = tmp_path / "fork.json"
    save_keyring(fork, load_keyring_file(ring_file).rotated())
    await rotate_key(ring_file, pool)
    await heartbeat(pool, "replica-forked", replica(fork).keys)
    with pytest.raises(
        RotationRefusedError, match="replica-forked holds a different key version 2"
    ):
        await set_min_version(pool, ring_file, 1)


async def test_min_version_waits_for_a_writer_and_then_counts_its_write(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    stale_copy = tmp_path / "stale.json"
    shutil.copy(ring_file, stale_copy)
    await rotate_key(ring_file, pool)
    stale = replica(stale_copy)  # no heartbeat: a replica the fence cannot see coming
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        key = await current_data_key(conn, stale, "org-a")  # picked, not yet committed
        assert key.kek_version == 1
        raising = asyncio.create_task(set_min_version(pool, ring_file, 2))
        await waiting_on_lock(pool, raising)
        await write_credential(conn, stale, "org-a")
        await transaction.commit()
    with pytest.raises(RotationRefusedError, match="1 credential"):
        await raising
    assert load_keyring_file(ring_file).min_decrypt_version == 1
    assert await pool.fetchval("SELECT min_version FROM keyring_fence") == 1


async def test_after_min_version_a_stale_ring_cannot_write(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    stale_copy = tmp_path / "stale.json"
    shutil.copy(ring_file, stale_copy)
    await rotate_key(ring_file, pool)
    await set_min_version(pool, ring_file, 2)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Unavailable, match="not usable"):
            await write_credential(conn, replica(stale_copy), "org-a")
    async with pool.acquire() as conn, conn.transaction():
        assert (await write_credential(conn, replica(ring_file), "org-a")).kek_version == 2


async def test_the_drop_skips_a_key_a_stale_writer_holds(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    stale_copy = tmp_path / "stale.json"
    shutil.copy(ring_file, stale_copy)
    stale = replica(stale_copy)
    async with pool.acquire() as conn, conn.transaction():
        await write_credential(conn, stale, "org-a")
    await pool.execute("DELETE FROM credentials")  # org-a's key v1 is now unused
    await rotate_key(ring_file, pool)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        assert (await current_data_key(conn, stale, "org-a")).version == 1
        moved, dropped = await rewrap(pool, replica(ring_file))  # not blocked, no FK error
        assert (moved, dropped) == (0, 0)
        await write_credential(conn, stale, "org-a")
        await transaction.commit()
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE dek_version = 1") == 1


async def test_a_forked_ring_cannot_store_a_data_key(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    fork = tmp_path / "fork.json"
    save_keyring(fork, load_keyring_file(ring_file).rotated())
    await rotate_key(ring_file, pool)  # claims version 2 in the database
    forked = replica(fork)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Unavailable, match="not usable"):
            await write_credential(conn, forked, "org-a")
    assert await pool.fetchval("SELECT count(*) FROM data_keys") == 0

    assert not await load_keyring(pool, forked.keys)  # the database's checks: it stops
    assert not forked.keys.loaded
    assert "does not match the database" in (forked.keys.status() or "")


async def test_two_rotations_from_one_base_cannot_both_make_v2(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    other_machine = tmp_path / "other.json"
    shutil.copy(ring_file, other_machine)
    assert await rotate_key(ring_file, pool) == 2
    with pytest.raises(RotationRefusedError, match="key version 2 already exists"):
        await rotate_key(other_machine, pool)
    assert load_keyring_file(other_machine).active == 1
    assert (await keys_repo.kek_checks(pool))[2] == load_keyring_file(ring_file).checks[2]


async def test_a_replica_loads_a_rotation_only_when_it_matches_the_database(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    running = replica(ring_file)
    await rotate_key(ring_file, pool)
    assert await load_keyring(pool, running.keys)
    assert running.keys.ring.active == 2
    base = load_keyring_file(ring_file)
    save_keyring(ring_file, base.rotated())  # a v3 nobody claimed: fine
    assert await load_keyring(pool, running.keys)
    save_keyring(ring_file, base.rotated())  # a v3 that differs from the loaded one
    assert not await load_keyring(pool, running.keys)
    assert running.keys.ring.active == 3
    assert "key version 3 changed" in (running.keys.status() or "")


async def test_data_keys_from_before_checks_get_the_ring_s_check_once_one_opens(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    running = replica(ring_file)
    legacy = running.new_data_key("org-a", 1)
    await pool.execute(  # as written before migration 0002: no check value
        "INSERT INTO data_keys (org_id, version, kek_version, wrapped) VALUES ('org-a', 1, 1, $1)",
        legacy.wrapped,
    )
    other = tmp_path / "other.json"
    generate_keyring_file(other)  # another key under version 1: must not claim it
    await load_keyring(pool, replica(other).keys)
    assert await keys_repo.kek_checks(pool) == {}

    await load_keyring(pool, running.keys)
    check = running.keys.ring.checks[1]
    assert await keys_repo.kek_checks(pool) == {1: check}
    assert await pool.fetchval("SELECT kek_check FROM data_keys") == check


async def test_reads_name_a_forked_ring_instead_of_failing_authentication(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    """Every statement that reads a data key carries its check value: a replica whose
    version 1 is another key (loaded before it saw the database) is told so by name."""
    async with pool.acquire() as conn, conn.transaction():
        await write_credential(conn, replica(ring_file), "org-a")
    cid = await pool.fetchval("SELECT id FROM credentials")
    fork = tmp_path / "fork.json"
    generate_keyring_file(fork)
    forked = replica(fork)
    async with pool.acquire() as conn, conn.transaction():
        locked = await repo.lock_secret(conn, "org-a", cid)
        stale = await keys_repo.stale_secrets(conn, 2, 10)
    revealed = await repo.reveal_secret(pool, "org-a", cid, repo.Audit("test"), durable_audit=True)
    assert locked is not None
    assert revealed is not None
    assert len(stale) == 1
    for secret in (locked, revealed, *stale):
        with pytest.raises(KeyRingError, match="forked key ring"):
            decrypt(forked, secret)


async def move_to_new_data_key(conn: Connection, stale: Envelope, org: str) -> int:
    """A lagging replica (still on KEK 1) mints the org's next data key and rewrites
    every credential under it: dek_version changes, kek_version stays 1."""
    newest = await keys_repo.newest_data_key(conn, org)
    assert newest is not None
    fresh = stale.new_data_key(org, newest.version + 1)
    assert await keys_repo.insert_data_key(conn, fresh)
    key = stale.unwrap(fresh)
    rows = await conn.fetch("SELECT id, version FROM credentials ORDER BY id FOR UPDATE")
    for row in rows:
        sealed = stale.seal_credential(key, org, row["id"], row["version"] + 1, b"{}")
        await conn.execute(
            "UPDATE credentials SET dek_version = $2, kek_version = $3, ciphertext = $4,"
            " version = version + 1 WHERE id = $1",
            row["id"],
            sealed.dek_version,
            sealed.kek_version,
            sealed.ciphertext,
        )
    return len(rows)


async def test_rewrap_takes_rows_whose_data_key_moved_while_it_waited(
    pool: asyncpg.Pool, ring_file: Path, tmp_path: Path
) -> None:
    """Rewrap waits for the rows a writer holds; the writer commits them under a new
    data key. Locking over the credentials-data_keys join re-checked the join against
    the old data-key row and dropped every moved row: a batch of 0 ends rewrap with
    them still under KEK 1. The rows must be taken, rewrapped and still open."""
    stale_copy = tmp_path / "stale.json"
    shutil.copy(ring_file, stale_copy)
    stale = replica(stale_copy)
    async with pool.acquire() as conn, conn.transaction():
        for _ in range(3):
            await write_credential(conn, stale, "org-a")
    await rotate_key(ring_file, pool)
    fresh = replica(ring_file)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        assert await move_to_new_data_key(conn, stale, "org-a") == 3
        rewrapping = asyncio.create_task(rewrap_batch(pool, fresh, 10))
        await waiting_on_lock(pool, rewrapping)
        await transaction.commit()
    assert await rewrapping == 3
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE kek_version < 2") == 0
    async with pool.acquire() as conn, conn.transaction():
        for cid in await conn.fetch("SELECT id FROM credentials"):
            secret = await repo.lock_secret(conn, "org-a", cid["id"])
            assert secret is not None
            assert decrypt(fresh, secret) == b"{}"
