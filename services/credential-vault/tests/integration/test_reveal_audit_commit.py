"""A reveal's audit row commits without waiting for the WAL flush, unless
``VAULT_REVEAL_AUDIT_DURABLE``: the reveal's own statement sets ``synchronous_commit``
for its transaction only, so credential writes on the same connection stay durable."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest
from credential_vault import repository as repo

from .conftest import Vault


async def _mode_inside_and_after(pool: asyncpg.Pool, cid: UUID, *, durable: bool) -> list[str]:
    """``synchronous_commit`` within the reveal's transaction, and after it ends."""
    async with pool.acquire() as conn:
        before = await conn.fetchval("SHOW synchronous_commit")
        async with conn.transaction():
            found = await repo.reveal_secret(
                conn, "org-a", cid, repo.Audit("test"), durable_audit=durable
            )
            assert found is not None
            inside = await conn.fetchval("SHOW synchronous_commit")
        after = await conn.fetchval("SHOW synchronous_commit")
    return [before, inside, after]


@pytest.mark.parametrize(("durable", "inside"), [(False, "off"), (True, "on")])
async def test_the_commit_mode_holds_for_the_reveal_only(
    vault: Vault, durable: bool, inside: str
) -> None:
    cid = UUID((await vault.create("string", {"value": "sk-1"}))["id"])
    assert await _mode_inside_and_after(vault.pool, cid, durable=durable) == ["on", inside, "on"]


async def test_every_reveal_still_leaves_its_audit_row(vault: Vault) -> None:
    cid = (await vault.create("string", {"value": "sk-1"}))["id"]
    assert not vault.settings.reveal_audit_durable  # the default
    for _ in range(3):
        assert (await vault.reveal(cid)).status_code == 200
    rows = await vault.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'reveal' AND credential_id = $1",
        UUID(cid),
    )
    assert rows == 3
