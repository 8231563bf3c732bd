"""`POST /v1/credentials:batch-reveal`: many reveals in one call (the OAuth broker's
refresh scheduler), with the single reveal's rules: the caller's org only, one audit
row per credential, not cached, bounded size."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from .conftest import Vault

pytestmark = pytest.mark.integration
URL = "/v1/credentials:batch-reveal"


async def test_reveals_the_callers_and_lists_the_rest_as_not_found(
    vault: Vault, samples: dict[str, Any]
) -> None:
    mine = [await vault.create("oauth2-token", samples["oauth2-token"]) for _ in range(3)]
    foreign = await vault.create("string", samples["string"], org="org-b")
    unknown = str(uuid4())
    ids = [m["id"] for m in mine] + [foreign["id"], unknown, mine[0]["id"]]
    response = await vault.client.post(URL, json={"ids": ids}, headers=vault.headers())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert sorted(item["id"] for item in body["items"]) == sorted(m["id"] for m in mine)
    for item in body["items"]:
        assert item["data"] == samples["oauth2-token"]
        assert (item["type"], item["version"]) == ("oauth2-token", 1)
    assert sorted(body["notFound"]) == sorted([foreign["id"], unknown])
    single = (await vault.reveal(mine[1]["id"])).json()
    assert single in body["items"]


async def test_each_credential_revealed_is_audited(vault: Vault, samples: dict[str, Any]) -> None:
    made = [await vault.create("basic-auth", samples["basic-auth"]) for _ in range(2)]
    ids = [m["id"] for m in made]
    await vault.client.post(URL, json={"ids": ids}, headers=vault.headers())
    rows = await vault.pool.fetch(
        "SELECT credential_id::text AS id, actor FROM audit_log"
        " WHERE action = 'reveal' AND credential_id = ANY($1::uuid[])",
        ids,
    )
    assert sorted((r["id"], r["actor"]) for r in rows) == sorted((i, "user@org-a") for i in ids)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": []}, "ids"),
        ({"ids": ["nope"]}, "ids.0"),
        ({"ids": [str(uuid4())] * 101}, "ids"),
        ({}, "ids"),
        ({"ids": [str(uuid4())], "extra": 1}, "extra"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    vault: Vault, body: dict[str, Any], field: str
) -> None:
    response = await vault.client.post(URL, json=body, headers=vault.headers())
    assert response.status_code == 422, response.text
    assert f"body.{field}" in [error["field"] for error in response.json()["errors"]]


async def test_needs_the_reveal_scope(vault: Vault, samples: dict[str, Any]) -> None:
    made = await vault.create("string", samples["string"])
    read_only = vault.headers(scopes=["credentials:read"])
    response = await vault.client.post(URL, json={"ids": [made["id"]]}, headers=read_only)
    assert (response.status_code, response.json()["missingScopes"]) == (403, ["credentials:reveal"])
