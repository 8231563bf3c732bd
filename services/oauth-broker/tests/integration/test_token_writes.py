"""Concurrent token writes share `:batch-replace-token` calls to the real vault process,
and each still gets its own compare-and-set outcome."""

from __future__ import annotations

import asyncio

import pytest
from broker_helpers import Broker, new_org
from plugboard_servicekit.errors import NotFound, PreconditionFailed
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration
TOKENS = {"accessToken": "old", "refreshToken": "r0"}


def vault_posts() -> float:
    """``plugboard_service_calls_total`` of this process's successful POSTs to the vault."""
    labels = {"target": "credential-vault", "method": "POST", "outcome": "2xx"}
    return REGISTRY.get_sample_value("plugboard_service_calls_total", labels) or 0.0


async def test_a_burst_of_writes_goes_in_few_calls_each_with_its_outcome(broker: Broker) -> None:
    org, vault = new_org(), broker.deps.vault
    made = [await vault.create_token(org, f"t{i}", TOKENS, None) for i in range(30)]
    stale_id, _ = made[0]
    foreign_id, _ = await vault.create_token(new_org(), "other org", TOKENS, None)
    writes = [(cid, version) for cid, version in made[1:]]
    writes += [(stale_id, 9), (foreign_id, 1)]
    before = vault_posts()
    results = await asyncio.gather(
        *(vault.replace_token(org, cid, v, {"accessToken": f"new-{cid}"}) for cid, v in writes),
        return_exceptions=True,
    )
    calls = vault_posts() - before
    assert results[:29] == [2] * 29
    assert isinstance(results[29], PreconditionFailed)
    assert isinstance(results[30], NotFound)
    assert calls < len(writes) / 2, f"{calls} vault calls for {len(writes)} writes"
    revealed = await vault.reveal_many(org, [cid for cid, _ in made[1:4]])
    assert {r.data["accessToken"] for r in revealed.values()} == {
        f"new-{cid}" for cid, _ in made[1:4]
    }
    assert all(r.data["refreshToken"] == "r0" for r in revealed.values())  # kept


async def test_a_lone_write_is_sent_at_once_and_a_replay_is_412(broker: Broker) -> None:
    org, vault = new_org(), broker.deps.vault
    cid, version = await vault.create_token(org, "lone", TOKENS, None)
    assert await vault.replace_token(org, cid, version, {"accessToken": "fresh"}) == version + 1
    with pytest.raises(PreconditionFailed):
        await vault.replace_token(org, cid, version, {"accessToken": "fresh"})
