"""The set-based ``:batch-replace-token``: a mixed batch answers every item as the single
``:replace-token`` would, writes only the accepted ones (rows, audit rows, events, in id
order), two overlapping batches do not deadlock, and the statements a batch runs do
not grow with its size."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from credential_vault import token_batches
from credential_vault.crypto import Envelope
from credential_vault.events import state_event
from credential_vault.repository import Audit, get_credential
from credential_vault.token_batches import Replaced, TokenReplacement
from plugboard_servicekit.db import Connection
from plugboard_servicekit.testing import TopicReader

from .conftest import Vault

pytestmark = pytest.mark.integration
URL = "/v1/credentials:batch-replace-token"
AUDIT = Audit("test")
TOKENS = {"accessToken": "fresh", "accessTokenExpiresAt": "2032-01-01T00:00:00Z"}


async def _tokens(vault: Vault, samples: dict[str, Any], count: int) -> list[str]:
    return [
        (await vault.create("oauth2-token", samples["oauth2-token"]))["id"] for _ in range(count)
    ]


async def _post(vault: Vault, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await vault.client.post(URL, json={"items": items}, headers=vault.headers())
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def _apply(vault: Vault, items: list[TokenReplacement]) -> list[Replaced]:
    """The batch use case itself, committed: it reaches the data's own validation
    (422) with tokens the API's item schema would already refuse."""
    async with vault.pool.acquire() as conn, conn.transaction():
        envelope = vault.deps.envelope
        return await token_batches.replace_tokens(conn, envelope, "org-a", AUDIT, items)


async def test_a_mixed_batch_refuses_items_alone_and_answers_in_id_order(
    vault: Vault, samples: dict[str, Any]
) -> None:
    ok, rotated, stale, bad = await _tokens(vault, samples, 4)
    basic = (await vault.create("basic-auth", samples["basic-auth"]))["id"]
    foreign = (await vault.create("oauth2-token", samples["oauth2-token"], org="org-b"))["id"]
    missing = str(uuid4())
    items = [
        (ok, 1, TOKENS),
        (rotated, 1, TOKENS | {"refreshToken": "rotated"}),
        (stale, 2, TOKENS),
        (bad, 1, {"accessToken": ""}),
        (basic, 1, TOKENS),
        (foreign, 1, TOKENS),
        (missing, 1, TOKENS),
    ]
    outcomes = await _apply(vault, [TokenReplacement(UUID(c), v, t) for c, v, t in reversed(items)])

    assert [str(o.credential_id) for o in outcomes] == sorted((c for c, _, _ in items), key=UUID)
    assert {str(o.credential_id): (o.status, o.version) for o in outcomes} == {
        ok: (200, 2), rotated: (200, 2), stale: (412, None), bad: (422, None),
        basic: (409, None), foreign: (404, None), missing: (404, None),
    }  # fmt: skip
    assert all((o.refused is None) == (o.status == 200) for o in outcomes)
    refused_bad = next(o.refused for o in outcomes if str(o.credential_id) == bad)
    assert refused_bad is not None
    assert "body.accessToken" in [issue.field for issue in refused_bad.errors]
    assert (await vault.reveal(ok)).json()["data"] == samples["oauth2-token"] | TOKENS
    assert (await vault.reveal(rotated)).json()["data"] == samples["oauth2-token"] | TOKENS | {
        "refreshToken": "rotated"
    }
    for refused in (stale, bad):
        revealed = (await vault.reveal(refused)).json()
        assert (revealed["version"], revealed["data"]) == (1, samples["oauth2-token"])
    assert (await vault.reveal(basic)).json()["data"] == samples["basic-auth"]


async def test_the_api_answers_each_item_once_in_id_order(
    vault: Vault, samples: dict[str, Any]
) -> None:
    ok, stale = await _tokens(vault, samples, 2)
    basic = (await vault.create("basic-auth", samples["basic-auth"]))["id"]
    missing = str(uuid4())
    items = [
        {"id": ok, "ifMatch": 1, "data": TOKENS},
        {"id": stale, "ifMatch": 5, "data": TOKENS},
        {"id": basic, "ifMatch": 1, "data": TOKENS},
        {"id": missing, "ifMatch": 1, "data": TOKENS},
    ]
    answered = await _post(vault, list(reversed(items)))
    assert [a["id"] for a in answered] == sorted((i["id"] for i in items), key=UUID)
    assert {a["id"]: (a["status"], a["version"]) for a in answered} == {
        ok: (200, 2), stale: (412, None), basic: (409, None), missing: (404, None),
    }  # fmt: skip
    assert [a["detail"] is None for a in answered] == [a["status"] == 200 for a in answered]


async def test_applied_items_get_one_audit_row_and_one_event_each(
    vault: Vault, samples: dict[str, Any]
) -> None:
    applied = await _tokens(vault, samples, 5)
    stale = await _tokens(vault, samples, 2)
    items = [{"id": cid, "ifMatch": 1, "data": TOKENS} for cid in applied]
    items += [{"id": cid, "ifMatch": 3, "data": TOKENS} for cid in stale]
    batch = set(applied + stale)
    bootstrap = vault.settings.kafka_bootstrap_servers
    async with TopicReader(bootstrap, "credential.refreshed") as reader:
        answered = await _post(vault, items)
        events = await reader.events(count=5, where=lambda e: e.subject in batch, settle=1.0)
    assert {a["id"] for a in answered if a["status"] == 200} == set(applied)

    audited = await vault.pool.fetch(
        "SELECT credential_id, version, actor, outcome FROM audit_log"
        " WHERE action = 'refresh' ORDER BY id"
    )
    assert [(str(r["credential_id"]), r["version"], r["outcome"]) for r in audited] == [
        (cid, 2, "ok") for cid in sorted(applied, key=UUID)
    ]
    creators = await vault.pool.fetch("SELECT DISTINCT actor FROM audit_log")
    assert {r["actor"] for r in audited} == {r["actor"] for r in creators}

    assert sorted((e.subject, e.data["version"]) for e in events) == [
        (cid, 2) for cid in sorted(applied)
    ]
    for event in events:
        row = await get_credential(vault.pool, "org-a", UUID(event.subject))
        assert row is not None
        expected = state_event("credential.refreshed", row).model_dump(mode="json", by_alias=True)
        got = event.model_dump(mode="json", by_alias=True)
        for envelope in (expected, got):
            del envelope["id"], envelope["time"], envelope["data"]["occurredAt"]
        assert list(got.items()) == list(expected.items())
        assert list(got["data"]) == list(expected["data"])  # same members, same order


async def test_overlapping_batches_in_opposite_orders_both_finish(
    vault: Vault, samples: dict[str, Any]
) -> None:
    ids = await _tokens(vault, samples, 12)
    for version in (1, 2, 3):
        items = [{"id": cid, "ifMatch": version, "data": TOKENS} for cid in ids]
        first, second = await asyncio.wait_for(
            asyncio.gather(_post(vault, items), _post(vault, list(reversed(items)))), 30
        )
        for cid in ids:
            outcomes = sorted((a["status"], a["version"]) for a in first + second if a["id"] == cid)
            assert outcomes == [(200, version + 1), (412, None)], (version, cid)
    stored = await vault.pool.fetch(
        "SELECT version FROM credentials WHERE id = ANY($1::uuid[])", [UUID(cid) for cid in ids]
    )
    assert [r["version"] for r in stored] == [4] * len(ids)


async def test_events_are_staged_in_id_order_as_the_single_call_builds_them(
    vault: Vault, samples: dict[str, Any]
) -> None:
    """Read inside the batch's own transaction (rolled back), before the relay can
    publish and delete them: the outbox rows' order and exact payload members."""
    ids = await _tokens(vault, samples, 6)
    items = [TokenReplacement(UUID(cid), 1, TOKENS) for cid in reversed(ids)]
    async with vault.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await token_batches.replace_tokens(conn, vault.deps.envelope, "org-a", AUDIT, items)
            staged = await conn.fetch(
                "SELECT topic, key, payload FROM outbox"
                " WHERE topic = 'credential.refreshed' AND key = ANY($1::text[]) ORDER BY id",
                ids,
            )
            rows = [await get_credential(conn, "org-a", UUID(cid)) for cid in ids]
        finally:
            await transaction.rollback()
    assert [(r["topic"], r["key"]) for r in staged] == [
        ("credential.refreshed", cid) for cid in sorted(ids, key=UUID)
    ]
    by_id = {str(row.id): row for row in rows if row is not None}
    for record in staged:
        got = json.loads(record["payload"])
        expected = json.loads(
            state_event("credential.refreshed", by_id[record["key"]]).model_dump_json(by_alias=True)
        )
        for envelope in (expected, got):
            del envelope["id"], envelope["time"], envelope["data"]["occurredAt"]
        assert list(got.items()) == list(expected.items())


async def _statements(conn: Connection, envelope: Envelope, ids: list[str]) -> list[str]:
    """What one batch over ``ids`` sends, as asyncpg's query logger sees it (every
    query; the outbox's COPY is a copy-in, not a query, and is not among them)."""
    logged: list[str] = []
    items = [TokenReplacement(UUID(cid), 1, TOKENS) for cid in ids]
    with conn.query_logger(lambda record: logged.append(record.query)):
        async with conn.transaction():
            outcomes = await token_batches.replace_tokens(conn, envelope, "org-a", AUDIT, items)
        await asyncio.sleep(0.1)  # loggers are called soon, not at once
    assert [o.status for o in outcomes] == [200] * len(ids)
    return logged


async def test_the_statements_of_a_batch_do_not_grow_with_it(
    vault: Vault, samples: dict[str, Any]
) -> None:
    """A batch of 1 and one of 30 send the same statements: the lock, the data keys,
    the current data key, the update (and BEGIN/COMMIT). One connection throughout,
    after a first batch, so asyncpg's one-off type introspection is not counted."""
    ids = await _tokens(vault, samples, 32)  # also mints the org's data key, reserves a block
    async with vault.pool.acquire() as conn:
        await _statements(conn, vault.deps.envelope, ids[:1])
        one = await _statements(conn, vault.deps.envelope, ids[1:2])
        many = await _statements(conn, vault.deps.envelope, ids[2:])
    assert one == many
    assert len([q for q in many if q not in ("BEGIN;", "COMMIT;")]) == 4, many
