"""Data keys rotate by use and by age: encryptions are counted in the database (in
reserved blocks), the org's next key is minted before the limit, and everything
sealed under the earlier keys still opens."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from credential_vault.crypto import DataKeyPolicy, Envelope, Sealed, WrappedDataKey
from credential_vault.datakeys import current_data_key
from credential_vault.keyring import KeyStore, generate_keyring_file
from plugboard_servicekit import db
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).parents[2] / "src" / "credential_vault" / "migrations"


@pytest.fixture
async def pool(postgres_dsn: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
    await db.migrate(postgres_dsn, fresh_schema, [MIGRATIONS])
    created = await db.create_pool(postgres_dsn, fresh_schema, max_size=4)
    yield created
    await created.close()


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    path = tmp_path / "keyring.json"
    generate_keyring_file(path)
    store = KeyStore(path, None)
    store.load()
    return store


def minted(reason: str) -> float:
    value = REGISTRY.get_sample_value("plugboard_vault_data_keys_minted_total", {"reason": reason})
    return value or 0.0


async def write(pool: asyncpg.Pool, envelope: Envelope, org: str = "org-a") -> UUID:
    """One credential write's key work, committed: pick or mint, seal, insert."""
    cid = uuid4()
    async with pool.acquire() as conn, conn.transaction():
        key = await current_data_key(conn, envelope, org)
        sealed = envelope.seal_credential(key, org, cid, 1, cid.bytes)
        await conn.execute(
            "INSERT INTO credentials (id, org_id, name, type, version, fields_set, dek_version,"
            " kek_version, ciphertext) VALUES ($1, $2, 'n', 'none', 1, '{}', $3, $4, $5)",
            cid,
            org,
            sealed.dek_version,
            sealed.kek_version,
            sealed.ciphertext,
        )
    return cid


async def open_all(pool: asyncpg.Pool, envelope: Envelope) -> dict[UUID, int]:
    """Decrypt every stored credential with its own data key: {id: data key version}."""
    rows = await pool.fetch(
        "SELECT c.id, c.org_id, c.dek_version, c.kek_version, c.ciphertext, d.wrapped,"
        " d.kek_check FROM credentials c JOIN data_keys d"
        " ON d.org_id = c.org_id AND d.version = c.dek_version"
    )
    opened = {}
    for row in rows:
        stored = WrappedDataKey(
            row["org_id"], row["dek_version"], row["kek_version"], row["wrapped"], row["kek_check"]
        )
        key = envelope.unwrap(stored)
        sealed = Sealed(row["dek_version"], row["kek_version"], row["ciphertext"])
        assert envelope.open_credential(key, sealed, row["org_id"], row["id"], 1) == row["id"].bytes
        opened[row["id"]] = row["dek_version"]
    return opened


async def test_a_tiny_limit_mints_the_next_key_and_old_data_still_opens(
    pool: asyncpg.Pool, keys: KeyStore
) -> None:
    envelope = Envelope(keys, policy=DataKeyPolicy(max_encryptions=3))
    used_up = minted("used_up")
    written = [await write(pool, envelope) for _ in range(10)]
    assert minted("used_up") - used_up == 3
    opened = await open_all(pool, envelope)
    assert sorted(opened) == sorted(written)
    per_key = Counter(opened.values())
    assert per_key == {1: 3, 2: 3, 3: 3, 4: 1}
    counted = dict(await pool.fetch("SELECT version, encryptions FROM data_keys"))
    assert all(counted[v] >= used for v, used in per_key.items())  # counted high, never low


async def test_replicas_share_one_key_s_limit(pool: asyncpg.Pool, keys: KeyStore) -> None:
    policy = DataKeyPolicy(max_encryptions=4)
    replicas = [Envelope(keys, policy=policy), Envelope(keys, policy=policy)]
    for n in range(12):
        await write(pool, replicas[n % 2])
    per_key = Counter((await open_all(pool, replicas[0])).values())
    assert max(per_key.values()) <= 4
    assert sum(per_key.values()) == 12


async def test_encryptions_are_reserved_in_blocks(pool: asyncpg.Pool, keys: KeyStore) -> None:
    envelope = Envelope(keys, policy=DataKeyPolicy(max_encryptions=2**30, reservation_block=64))
    for _ in range(100):
        await write(pool, envelope)
    rows = await pool.fetch("SELECT version, encryptions FROM data_keys")
    assert [(row["version"], row["encryptions"]) for row in rows] == [(1, 128)]  # 2 round trips


async def test_an_old_key_is_replaced_and_still_opens(pool: asyncpg.Pool, keys: KeyStore) -> None:
    envelope = Envelope(keys, policy=DataKeyPolicy(max_age_days=30))
    first = await write(pool, envelope)
    await write(pool, envelope)
    await pool.execute("UPDATE data_keys SET created_at = created_at - interval '31 days'")
    expired = minted("expired")
    latest = await write(pool, envelope)
    assert minted("expired") - expired == 1
    opened = await open_all(pool, envelope)
    assert (opened[first], opened[latest]) == (1, 2)


async def test_without_an_age_limit_an_old_key_stays(pool: asyncpg.Pool, keys: KeyStore) -> None:
    envelope = Envelope(keys, policy=DataKeyPolicy(max_age_days=None))
    await write(pool, envelope)
    await pool.execute("UPDATE data_keys SET created_at = created_at - interval '3650 days'")
    latest = await write(pool, envelope)
    assert (await open_all(pool, envelope))[latest] == 1
