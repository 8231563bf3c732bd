"""`POST /v1/credentials:batch-replace-token`: many refreshes in one call, each item its
own compare-and-set, refused alone with the status the single call would answer."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from plugboard_servicekit.testing import TopicReader

from .conftest import Vault

pytestmark = pytest.mark.integration
URL = "/v1/credentials:batch-replace-token"
TOKENS = {"accessToken": "fresh", "accessTokenExpiresAt": "2032-01-01T00:00:00Z"}


async def test_each_item_is_its_own_compare_and_set(vault: Vault, samples: dict[str, Any]) -> None:
    ok, stale, ok2 = [await vault.create("oauth2-token", samples["oauth2-token"]) for _ in range(3)]
    foreign = await vault.create("oauth2-token", samples["oauth2-token"], org="org-b")
    basic = await vault.create("basic-auth", samples["basic-auth"])
    items = [
        {"id": ok["id"], "ifMatch": 1, "data": TOKENS},
        {"id": stale["id"], "ifMatch": 7, "data": TOKENS},
        {"id": foreign["id"], "ifMatch": 1, "data": TOKENS},
        {"id": basic["id"], "ifMatch": 1, "data": TOKENS},
        {"id": ok2["id"], "ifMatch": 1, "data": TOKENS | {"refreshToken": "rotated"}},
    ]
    reader = await TopicReader(
        vault.settings.kafka_bootstrap_servers, "credential.refreshed"
    ).start()
    try:
        response = await vault.client.post(URL, json={"items": items}, headers=vault.headers())
        assert response.status_code == 200, response.text
        answered = {item["id"]: item for item in response.json()["items"]}
        events = await reader.events(
            where=lambda e: e.subject in (ok["id"], ok2["id"], stale["id"]), settle=1.0
        )
    finally:
        await reader.stop()
    statuses = {cid: (a["status"], a["version"]) for cid, a in answered.items()}
    assert statuses == {
        ok["id"]: (200, 2), stale["id"]: (412, None), foreign["id"]: (404, None),
        basic["id"]: (409, None), ok2["id"]: (200, 2),
    }  # fmt: skip
    assert sorted(e.subject for e in events) == sorted([ok["id"], ok2["id"]])
    assert (await vault.reveal(ok["id"])).json()["data"] == samples["oauth2-token"] | TOKENS
    rotated = (await vault.reveal(ok2["id"])).json()["data"]
    assert rotated["refreshToken"] == "rotated"
    assert (await vault.reveal(stale["id"])).json()["data"] == samples["oauth2-token"]


async def test_a_replayed_batch_writes_nothing_twice(vault: Vault, samples: dict[str, Any]) -> None:
    made = await vault.create("oauth2-token", samples["oauth2-token"])
    body = {"items": [{"id": made["id"], "ifMatch": 1, "data": TOKENS}]}
    first = await vault.client.post(URL, json=body, headers=vault.headers())
    again = await vault.client.post(URL, json=body, headers=vault.headers())
    assert [first.json()["items"][0]["status"], again.json()["items"][0]["status"]] == [200, 412]
    got = await vault.client.get(f"/v1/credentials/{made['id']}", headers=vault.headers())
    assert got.json()["version"] == 2


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "body.items"),
        ([{"id": "x", "ifMatch": 1, "data": TOKENS}], "body.items.0.id"),
        ([{"id": str(uuid4()), "ifMatch": 0, "data": TOKENS}], "body.items.0.ifMatch"),
        ([{"id": str(uuid4()), "ifMatch": 1, "data": {}}], "body.items.0.data.accessToken"),
        (
            [{"id": "00000000-0000-0000-0000-000000000001", "ifMatch": 1, "data": TOKENS}] * 2,
            "body.items",
        ),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    vault: Vault, items: list[dict[str, Any]], field: str
) -> None:
    response = await vault.client.post(URL, json={"items": items}, headers=vault.headers())
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_needs_the_refresh_scope(vault: Vault, samples: dict[str, Any]) -> None:
    made = await vault.create("oauth2-token", samples["oauth2-token"])
    body = {"items": [{"id": made["id"], "ifMatch": 1, "data": TOKENS}]}
    response = await vault.client.post(
        URL, json=body, headers=vault.headers(scopes=["credentials:reveal"])
    )
    assert (response.status_code, response.json()["missingScopes"]) == (
        403,
        ["credentials:refresh"],
    )
