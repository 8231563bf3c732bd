"""Issue 8 on the vault: no spurious 404 while rewrap moves a credential, an audit
trail that names the request and trace and keeps refusals, append-only for the
service role, reveal never cached, providerAppId only where it means something,
and bad headers, timestamps and text answered with 4xx problems."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from credential_vault.app import SPEC
from credential_vault.rotation import rewrap_batch, rotate_key
from credential_vault.settings import VaultSettings
from plugboard_cli.keys import ensure_service_keys
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.identity import private_key_file

from .conftest import Vault, running_vault, snapshot, wait_until

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_rewrap_during_replace_token_never_answers_404(
    vault: Vault, samples: dict[str, Any], keyring_file: Path
) -> None:
    """Rewrap moves each credential to the org's new data key while the broker keeps
    refreshing the same rows. A refresh that waited for rewrap's row lock used to
    re-check its join against the old data-key row, find none, and answer 404."""
    ids = [(await vault.create("oauth2-token", samples["oauth2-token"]))["id"] for _ in range(60)]
    await rotate_key(keyring_file, vault.pool)
    await wait_until(lambda: vault.deps.keys.ring.active == 2, timeout=10)
    statuses: Counter[int] = Counter()
    rewrapping = True

    async def refresh(own: list[str]) -> None:
        versions = dict.fromkeys(own, 1)
        while rewrapping:
            for cid in own:
                response = await vault.client.post(
                    f"/v1/credentials/{cid}:replace-token",
                    json={"accessToken": f"at-{versions[cid]}"},
                    headers=vault.headers() | {"If-Match": str(versions[cid])},
                )
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    versions[cid] += 1

    async def rewrap() -> None:
        nonlocal rewrapping
        try:
            while await rewrap_batch(vault.pool, vault.deps.envelope, 20):
                await asyncio.sleep(0)
        finally:
            rewrapping = False

    workers = [refresh(ids[n::6]) for n in range(6)]
    await asyncio.gather(rewrap(), *workers)
    assert set(statuses) == {200}, statuses
    stale = await vault.pool.fetchval("SELECT count(*) FROM credentials WHERE kek_version < 2")
    assert stale == 0


async def audit_rows(vault: Vault) -> list[asyncpg.Record]:
    return await vault.pool.fetch(
        "SELECT org_id, actor, action, credential_id::text AS cid, version, outcome,"
        " request_id, trace_id FROM audit_log ORDER BY id"
    )


async def test_audit_names_request_and_trace_and_keeps_refusals(
    vault: Vault, samples: dict[str, Any]
) -> None:
    created = await vault.create("string", samples["string"])
    cid = created["id"]
    traced = vault.headers() | {"X-Request-ID": "req-reveal-1", "traceparent": TRACEPARENT}
    assert (await vault.client.post(f"/v1/credentials/{cid}:reveal", headers=traced)).is_success
    other_org = vault.headers("org-b") | {"X-Request-ID": "req-foreign"}
    foreign = await vault.client.post(f"/v1/credentials/{cid}:reveal", headers=other_org)
    read_only = vault.headers(scopes=["credentials:read"]) | {"X-Request-ID": "req-scope"}
    denied = await vault.client.post(f"/v1/credentials/{cid}:reveal", headers=read_only)
    assert (foreign.status_code, denied.status_code) == (404, 403)
    await vault.pool.execute(  # a ciphertext that no longer authenticates: one byte flipped
        "UPDATE credentials"
        " SET ciphertext = set_byte(ciphertext, 19, get_byte(ciphertext, 19) # 255)"
        " WHERE id = $1",
        cid,
    )
    failed = await vault.client.post(f"/v1/credentials/{cid}:reveal", headers=vault.headers())
    assert failed.status_code == 500

    rows = [dict(row) for row in await audit_rows(vault)]
    assert [(r["org_id"], r["action"], r["outcome"], r["cid"]) for r in rows] == [
        ("org-a", "create", "ok", cid),
        ("org-a", "reveal", "ok", cid),
        ("org-b", "reveal", "not_found", cid),
        ("org-a", "reveal", "denied", cid),
        ("org-a", "reveal", "ok", cid),  # the ciphertext was read ...
        ("org-a", "reveal", "failed", cid),  # ... and did not authenticate
    ]
    assert rows[4]["request_id"] == rows[5]["request_id"]
    assert rows[1]["request_id"] == "req-reveal-1"
    assert rows[1]["trace_id"] == TRACEPARENT.split("-")[1]
    assert [r["request_id"] for r in rows[2:4]] == ["req-foreign", "req-scope"]
    assert rows[2]["actor"] == "user@org-b"
    assert all(r["request_id"] for r in rows)


async def test_audit_log_is_append_only_for_the_service_role(
    vault: Vault, samples: dict[str, Any]
) -> None:
    await vault.create("string", samples["string"])
    assert await vault.pool.fetchval("SELECT current_user") == vault.schema  # the service role
    for statement in (
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await vault.pool.execute(statement)
    assert await vault.pool.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_reveal_is_never_cached(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("basic-auth", samples["basic-auth"])
    revealed = await vault.reveal(created["id"])
    assert revealed.status_code == 200
    assert revealed.headers["cache-control"] == "no-store"


async def test_provider_app_only_for_oauth2_types(vault: Vault, samples: dict[str, Any]) -> None:
    app_id = "0190a0a0-0000-7000-8000-000000000001"
    token = await vault.create("oauth2-token", samples["oauth2-token"], providerAppId=app_id)
    assert token["providerAppId"] == app_id
    before = await snapshot(vault)
    for credential_type in ("string", "basic-auth", "certificate", "none"):
        body = {
            "name": "n",
            "type": credential_type,
            "data": samples[credential_type],
            "providerAppId": app_id,
        }
        response = await vault.client.post("/v1/credentials", json=body, headers=vault.headers())
        assert response.status_code == 422, credential_type
        assert [e["field"] for e in response.json()["errors"]] == ["body.providerAppId"]
    assert await snapshot(vault) == before


# 5,000 digits; non-ASCII digits (U+0661 is ARABIC-INDIC DIGIT ONE); a list; not a number
BAD_IF_MATCH = ["9" * 5000, "²", '"1²"', 'W/""', "1, 2", "-1", "0x1", "\u0661"]


def raw_header(value: str) -> bytes:
    """As a client would send it: latin-1 where it fits (what the server decodes with,
    so ``²`` arrives as ``²``), else UTF-8 bytes."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


async def test_bad_if_match_is_412_never_500(vault: Vault, samples: dict[str, Any]) -> None:
    created = await vault.create("oauth2-token", samples["oauth2-token"])
    url = f"/v1/credentials/{created['id']}"
    before = await snapshot(vault)
    for value in BAD_IF_MATCH:
        headers: dict[str, Any] = vault.headers() | {"If-Match": raw_header(value)}
        tokens = {"accessToken": "a"}
        responses = [
            await vault.client.patch(url, json={"name": "x"}, headers=headers),
            await vault.client.delete(url, headers=headers),
            await vault.client.post(f"{url}:replace-token", json=tokens, headers=headers),
        ]
        assert [r.status_code for r in responses] == [412] * 3, value[:10]
        assert all(r.headers["content-type"] == "application/problem+json" for r in responses)
    assert await snapshot(vault) == before


OUT_OF_RANGE = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]


async def test_timestamps_outside_utc_range_are_422(vault: Vault, samples: dict[str, Any]) -> None:
    token = await vault.create("oauth2-token", samples["oauth2-token"])
    url = f"/v1/credentials/{token['id']}"
    before = await snapshot(vault)
    for instant in OUT_OF_RANGE:
        requests = [
            vault.client.post(
                "/v1/credentials",
                json={"name": "n", "type": "none", "expiresAt": instant},
                headers=vault.headers(),
            ),
            vault.client.post(
                "/v1/credentials",
                json={
                    "name": "n",
                    "type": "oauth2-token",
                    "data": {"accessToken": "a", "accessTokenExpiresAt": instant},
                },
                headers=vault.headers(),
            ),
            vault.client.patch(url, json={"expiresAt": instant}, headers=vault.headers()),
            vault.client.post(
                f"{url}:replace-token",
                json={"accessToken": "a", "issuedAt": instant},
                headers=vault.headers() | {"If-Match": "1"},
            ),
        ]
        for request in requests:
            response = await request
            assert response.status_code == 422, (instant, response.text)
    assert await snapshot(vault) == before


async def test_control_characters_and_broken_unicode_are_422(vault: Vault) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "a\x00b", "type": "none"}, "body.name"),
        ({"name": "line\nbreak", "type": "none"}, "body.name"),
        ({"name": "n", "type": "string", "data": {"value": "\ud800"}}, "body.data.value"),
        (
            {"name": "n", "type": "custom-function", "data": {"fields": {"a\x00": "v"}}},
            "body.data.fields",
        ),
        ({"name": "n", "type": "string", "data": {"value": "ok", "\udc00": 1}}, "body.data"),
    ]
    before = await snapshot(vault)
    for body, field in cases:
        raw = json.dumps(body).encode()  # escaped (\\u0000, \\ud800): what JSON may carry
        headers = vault.headers() | {"Content-Type": "application/json"}
        response = await vault.client.post("/v1/credentials", content=raw, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert any(e["field"].startswith(field) for e in response.json()["errors"]), response.text
    listed = await vault.client.get(
        "/v1/credentials", params={"name": "x\x00"}, headers=vault.headers()
    )
    assert listed.status_code == 422
    assert await snapshot(vault) == before


def service_keys(keys_dir: Path, *services: str) -> dict[str, str]:
    """A key pair per service in ``keys_dir``, as ``plugboard keys`` makes them (the
    vault reads the public halves); the private PEMs, by service, to sign with."""
    ensure_service_keys(keys_dir, services)
    return {service: private_key_file(keys_dir, service).read_text() for service in services}


def service_token(private_pem: str, service: str, scopes: list[str]) -> str:
    issuer = f"service:{service}"
    return mint_token(
        private_pem,
        sub=issuer,
        org="org-a",
        scopes=scopes,
        issuer=issuer,
        audience=SPEC.name,
        ttl_seconds=60,
    )


async def test_trusted_services_act_for_an_org_with_their_scopes(
    settings: VaultSettings, jwt_keys: tuple[str, str], samples: dict[str, Any], tmp_path: Path
) -> None:
    keys = service_keys(tmp_path, "oauth-broker", "notifier")
    with_keys = settings.model_copy(update={"service_keys_dir": tmp_path})
    async with running_vault(with_keys, jwt_keys[0], name=SPEC.name) as vault:
        created = await vault.create("oauth2-token", samples["oauth2-token"])
        url = f"/v1/credentials/{created['id']}:replace-token"

        async def call(service: str, scopes: list[str]) -> int:
            token = service_token(keys[service], service, scopes)
            headers = {"Authorization": f"Bearer {token}", "If-Match": "1"}
            response = await vault.client.post(url, json={"accessToken": "b"}, headers=headers)
            return response.status_code

        assert await call("notifier", ["credentials:refresh"]) == 401  # not trusted
        assert await call("oauth-broker", ["credentials:read"]) == 403  # not its scope
        assert await call("oauth-broker", ["credentials:refresh"]) == 200
        actors = await vault.pool.fetch(
            "SELECT actor, outcome FROM audit_log WHERE action = 'refresh' ORDER BY id"
        )
    assert [(r["actor"], r["outcome"]) for r in actors] == [
        ("service:oauth-broker", "denied"),
        ("service:oauth-broker", "ok"),
    ]


async def test_only_the_broker_may_take_a_revocation_hand_off(
    settings: VaultSettings, jwt_keys: tuple[str, str], samples: dict[str, Any], tmp_path: Path
) -> None:
    """``credentials:revoke`` is a scope any trusted service could mint for itself; the
    hand-off (a deleted credential's refresh token) goes to the broker alone."""
    keys = service_keys(tmp_path, "oauth-broker", "installation")
    with_keys = settings.model_copy(update={"service_keys_dir": tmp_path})
    async with running_vault(with_keys, jwt_keys[0], name=SPEC.name) as vault:
        created = await vault.create("oauth2-token", samples["oauth2-token"])
        deleted = await vault.client.delete(f"/v1/credentials/{created['id']}",
                                            headers=vault.headers())  # fmt: skip
        assert deleted.status_code == 204, deleted.text
        url = f"/v1/credentials/{created['id']}:take-revocation"

        async def take(service: str) -> httpx.Response:
            token = service_token(keys[service], service, ["credentials:revoke"])
            return await vault.client.post(url, headers={"Authorization": f"Bearer {token}"})

        refused = await take("installation")
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        taken = await take("oauth-broker")  # the refusal took nothing
        assert taken.status_code == 200, taken.text
        assert taken.json()["refreshToken"] == samples["oauth2-token"]["refreshToken"]
