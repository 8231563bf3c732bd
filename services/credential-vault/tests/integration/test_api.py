"""The credential API end to end on real PostgreSQL: every type round-trips, reads show
which fields are set and never values, merge patch with If-Match, org isolation,
custom-method routing and bad input that changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from plugboard_contracts.enums import CredentialType

from .conftest import Vault, snapshot

pytestmark = pytest.mark.integration

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


async def test_every_type_round_trips_and_reads_show_fields_not_values(
    vault: Vault, samples: dict[str, Any]
) -> None:
    for credential_type in CredentialType:
        data = samples[credential_type]
        created = await vault.create(credential_type, data)
        assert "data" not in created
        if credential_type != CredentialType.CUSTOM_FUNCTION:
            assert created["fieldsSet"] == sorted(data)
        assert (created["errors"], created["usages"], created["version"]) == ([], [], 1)

        revealed = await vault.reveal(created["id"])
        assert revealed.status_code == 200
        assert revealed.json()["data"] == data, credential_type

        url = f"/v1/credentials/{created['id']}"
        fetched = await vault.client.get(url, headers=vault.headers())
        assert fetched.json() == created
        assert fetched.headers["etag"] == '"1"'


async def test_custom_function_lists_field_names(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("custom-function", samples["custom-function"])
    assert created["fieldsSet"] == ["fields.apiKey", "fields.tenant"]


async def test_merge_patch_on_name_data_and_expiry(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("oauth2-client", samples["oauth2-client"])
    url = f"/v1/credentials/{created['id']}"
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    patch = {"name": "renamed", "data": {"scopes": ["read"], "authorizeUrl": None}}
    patched = await vault.client.patch(
        url, json=patch | {"expiresAt": expires}, headers=vault.headers() | MERGE_PATCH
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["version"], body["expiresAt"] is not None) == ("renamed", 2, True)
    assert "authorizeUrl" not in body["fieldsSet"]
    expected = {k: v for k, v in samples["oauth2-client"].items() if k != "authorizeUrl"}
    assert (await vault.reveal(created["id"])).json()["data"] == expected | {"scopes": ["read"]}

    cleared = await vault.client.patch(
        url, json={"expiresAt": None}, headers=vault.headers() | {"If-Match": '"2"'}
    )
    assert (cleared.status_code, cleared.json()["expiresAt"], cleared.json()["version"]) == (
        200,
        None,
        3,
    )


async def test_noop_patch_keeps_the_version(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("basic-auth", samples["basic-auth"])
    patched = await vault.client.patch(
        f"/v1/credentials/{created['id']}",
        json={"data": {"username": "alice"}},
        headers=vault.headers() | MERGE_PATCH,
    )
    assert patched.json()["version"] == 1


async def test_stale_if_match_is_412_and_changes_nothing(
    vault: Vault, samples: dict[str, Any]
) -> None:
    created = await vault.create("basic-auth", samples["basic-auth"])
    url = f"/v1/credentials/{created['id']}"
    first = await vault.client.patch(
        url, json={"name": "v2"}, headers=vault.headers() | MERGE_PATCH | {"If-Match": '"1"'}
    )
    assert first.status_code == 200
    before = await snapshot(vault)
    for request in (
        vault.client.patch(
            url,
            json={"data": {"password": "other"}},
            headers=vault.headers() | MERGE_PATCH | {"If-Match": '"1"'},
        ),
        vault.client.delete(url, headers=vault.headers() | {"If-Match": "1"}),
    ):
        stale = await request
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert stale.json()["currentVersion"] == 2
    assert await snapshot(vault) == before
    assert (await vault.reveal(created["id"])).json()["data"] == samples["basic-auth"]


async def test_another_orgs_credential_is_404_everywhere(
    vault: Vault, samples: dict[str, Any]
) -> None:
    created = await vault.create("oauth2-token", samples["oauth2-token"], org="org-a")
    url = f"/v1/credentials/{created['id']}"
    other = vault.headers("org-b")
    before = await snapshot(vault)
    responses = [
        await vault.client.get(url, headers=other),
        await vault.client.patch(url, json={"name": "x"}, headers=other | MERGE_PATCH),
        await vault.client.delete(url, headers=other),
        await vault.client.post(f"{url}:reveal", headers=other),
        await vault.client.post(
            f"{url}:replace-token", json={"accessToken": "x"}, headers=other | {"If-Match": "1"}
        ),
    ]
    assert [r.status_code for r in responses] == [404] * 5
    listed = await vault.client.get("/v1/credentials", headers=other)
    assert listed.json() == {"items": [], "nextPageToken": None}
    assert await snapshot(vault) == before


async def test_colon_routes_do_not_collide(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("string", samples["string"])
    url = f"/v1/credentials/{created['id']}"
    assert (await vault.client.post(f"{url}:reveal", headers=vault.headers())).status_code == 200
    assert (await vault.client.get(f"{url}:reveal", headers=vault.headers())).status_code == 404
    assert (await vault.client.post(url, headers=vault.headers())).status_code == 405
    assert (await vault.client.post(f"{url}:explode", headers=vault.headers())).status_code in (
        404,
        405,
    )
    assert (
        await vault.client.get("/v1/credentials/not-a-uuid", headers=vault.headers())
    ).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "telepathy", "data": {}}, "body.type"),
        ({"name": "x", "type": "basic-auth", "data": {"username": "u"}}, "body.data.password"),
        (
            {"name": "x", "type": "certificate", "data": {"certificate": "x", "key": "y"}},
            "body.data.key",
        ),
        ({"name": "x", "type": "string", "data": {"value": "v"}, "color": "red"}, "body.color"),
        ({"name": "x", "type": "none", "expiresAt": "2001-01-01T00:00:00Z"}, "body.expiresAt"),
        (
            {
                "name": "x",
                "type": "oauth2-client",
                "data": {
                    "clientId": "c",
                    "mtlsEnabled": True,
                    "mtlsCredentialId": "0190a0a0-0000-7000-8000-000000000000",
                },
            },
            "body.data.mtlsCredentialId",
        ),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(
    vault: Vault, body: dict[str, Any], field: str
) -> None:
    before = await snapshot(vault)
    response = await vault.client.post("/v1/credentials", json=body, headers=vault.headers())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]
    assert await snapshot(vault) == before


async def test_oversized_body_is_413_and_wrong_media_type_415(
    vault: Vault, samples: dict[str, Any]
) -> None:
    before = await snapshot(vault)
    huge = {"name": "x", "type": "string", "data": {"value": "v" * 70_000}}
    response = await vault.client.post("/v1/credentials", json=huge, headers=vault.headers())
    assert response.status_code == 413
    created = await vault.create("string", samples["string"])
    before = await snapshot(vault)
    wrong = await vault.client.patch(
        f"/v1/credentials/{created['id']}",
        content=b'{"name": "y"}',
        headers=vault.headers() | {"Content-Type": "text/plain"},
    )
    assert wrong.status_code == 415
    assert await snapshot(vault) == before


async def test_patch_with_invalid_data_names_the_field(
    vault: Vault, samples: dict[str, Any]
) -> None:
    created = await vault.create("jwt-bearer", samples["jwt-bearer"])
    before = await snapshot(vault)
    response = await vault.client.patch(
        f"/v1/credentials/{created['id']}",
        json={"data": {"algorithm": "HS256"}},
        headers=vault.headers() | MERGE_PATCH,
    )
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"body.data.privateKey", "body.data.secret"}
    removed = await vault.client.patch(
        f"/v1/credentials/{created['id']}", json={"name": None}, headers=vault.headers()
    )
    assert removed.status_code == 422
    assert await snapshot(vault) == before


async def test_list_filters_and_paginates(vault: Vault, samples: dict[str, Any]) -> None:
    ids = [(await vault.create("string", samples["string"]))["id"] for _ in range(5)]
    await vault.create("basic-auth", samples["basic-auth"])
    await vault.create("string", samples["string"], org="org-b")
    seen: list[str] = []
    token = None
    while True:
        params = {"type": "string", "pageSize": 2} | ({"pageToken": token} if token else {})
        page = (
            await vault.client.get("/v1/credentials", params=params, headers=vault.headers())
        ).json()
        assert all("data" not in item for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        token = page["nextPageToken"]
        if token is None:
            break
    assert seen == ids
    named = await vault.client.get(
        "/v1/credentials", params={"name": "basic-auth credential"}, headers=vault.headers()
    )
    assert [item["type"] for item in named.json()["items"]] == ["basic-auth"]
    garbage = await vault.client.get(
        "/v1/credentials", params={"pageToken": "%%%"}, headers=vault.headers()
    )
    assert garbage.status_code == 400


async def test_scopes_are_enforced(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("string", samples["string"])
    read_only = vault.headers(scopes=["credentials:read"])
    reveal = await vault.client.post(f"/v1/credentials/{created['id']}:reveal", headers=read_only)
    assert (reveal.status_code, reveal.json()["missingScopes"]) == (403, ["credentials:reveal"])
    write = await vault.client.post(
        "/v1/credentials", json={"name": "n", "type": "none"}, headers=read_only
    )
    assert write.status_code == 403
    assert (await vault.client.get("/v1/credentials")).status_code == 401


async def test_replace_token_compare_and_set(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("oauth2-token", samples["oauth2-token"])
    url = f"/v1/credentials/{created['id']}:replace-token"
    tokens = {"accessToken": "fresh", "accessTokenExpiresAt": "2032-01-01T00:00:00Z"}
    assert (await vault.client.post(url, json=tokens, headers=vault.headers())).status_code == 428
    replaced = await vault.client.post(
        url, json=tokens, headers=vault.headers() | {"If-Match": "1"}
    )
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    stale = await vault.client.post(url, json=tokens, headers=vault.headers() | {"If-Match": "1"})
    assert stale.status_code == 412
    data = (await vault.reveal(created["id"])).json()["data"]
    assert data == samples["oauth2-token"] | tokens  # the refresh token was kept

    basic = await vault.create("basic-auth", samples["basic-auth"])
    wrong_type = await vault.client.post(
        f"/v1/credentials/{basic['id']}:replace-token",
        json=tokens,
        headers=vault.headers() | {"If-Match": "1"},
    )
    assert wrong_type.status_code == 409
    refresh_only = vault.headers(scopes=["credentials:refresh"])
    assert (
        await vault.client.post(url, json=tokens, headers=refresh_only | {"If-Match": "2"})
    ).status_code == 200


async def test_delete_then_gone(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("string", samples["string"])
    url = f"/v1/credentials/{created['id']}"
    assert (await vault.client.delete(url, headers=vault.headers())).status_code == 204
    assert (await vault.client.get(url, headers=vault.headers())).status_code == 404
    assert (await vault.client.delete(url, headers=vault.headers())).status_code == 404


async def test_audit_records_who_did_what_without_secrets(
    vault: Vault, samples: dict[str, Any], canary: str
) -> None:
    created = await vault.create("basic-auth", samples["basic-auth"])
    url = f"/v1/credentials/{created['id']}"
    await vault.reveal(created["id"])
    await vault.client.patch(url, json={"name": "n2"}, headers=vault.headers() | MERGE_PATCH)
    await vault.client.delete(url, headers=vault.headers())
    rows = await vault.pool.fetch(
        "SELECT * FROM audit_log WHERE credential_id = $1 ORDER BY id", created["id"]
    )
    assert [(r["action"], r["version"], r["actor"], r["org_id"]) for r in rows] == [
        ("create", 1, "user@org-a", "org-a"),
        ("reveal", 1, "user@org-a", "org-a"),
        ("update", 2, "user@org-a", "org-a"),
        ("delete", 2, "user@org-a", "org-a"),
    ]
    assert canary not in repr([dict(row) for row in rows])
