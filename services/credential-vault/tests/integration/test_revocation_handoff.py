"""Revocation hand-offs: an oauth2-token credential deleted on request keeps its sealed
data for the OAuth broker's RFC 7009 revocation. ``:take-revocation`` answers the
tokens once (then 404), to the owning org only, with its own scope, audited; nothing
is kept for expiry or for other types; the purge destroys hand-offs older than the
window; rewrap keeps the data key a hand-off still needs; no token is logged or sent
in an event."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from credential_vault.handoffs import purge_once
from credential_vault.settings import VaultSettings
from plugboard_servicekit.testing import Canary, TopicReader

from .conftest import Vault, wait_until
from .test_rotation import run_cli, wait_for_ring

pytestmark = pytest.mark.integration

TOKENS = {
    "accessToken": "access-canary-7f3e1b",
    "refreshToken": "refresh-canary-c09d4a",
    "tokenType": "Bearer",
}


def take_url(credential_id: str) -> str:
    return f"/v1/credentials/{credential_id}:take-revocation"


async def deleted_token(vault: Vault, org: str = "org-a") -> str:
    cid = (await vault.create("oauth2-token", dict(TOKENS), org=org))["id"]
    response = await vault.client.delete(f"/v1/credentials/{cid}", headers=vault.headers(org))
    assert response.status_code == 204, response.text
    return cid


async def handoffs(vault: Vault, cid: str) -> int:
    return await vault.pool.fetchval(
        "SELECT count(*) FROM revocation_handoffs WHERE credential_id = $1::uuid", cid
    )


async def test_take_answers_the_tokens_once_and_is_audited(
    settings: VaultSettings, start_vault: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = io.StringIO()
    monkeypatch.setattr(sys, "stdout", logs)  # the service logs JSON lines to stdout
    bootstrap = settings.kafka_bootstrap_servers
    async with (
        TopicReader(bootstrap, "credential.deleted") as reader,
        start_vault(settings) as vault,
    ):
        cid = await deleted_token(vault)
        assert await handoffs(vault, cid) == 1
        taken = await vault.client.post(take_url(cid), headers=vault.headers())
        again = await vault.client.post(take_url(cid), headers=vault.headers())
        events = await reader.events(where=lambda e: e.subject == cid)
        audit = await vault.pool.fetch(
            "SELECT actor, outcome FROM audit_log"
            " WHERE action = 'take_revocation' AND credential_id = $1::uuid ORDER BY id",
            cid,
        )
        left = await handoffs(vault, cid)
    assert taken.status_code == 200, taken.text
    assert taken.json() == TOKENS
    assert taken.headers["cache-control"] == "no-store"
    assert again.status_code == 404
    assert left == 0
    assert [(r["actor"], r["outcome"]) for r in audit] == [
        ("user@org-a", "ok"), ("user@org-a", "not_found")]  # fmt: skip
    assert len(events) == 1
    assert events[0].data["reason"] == "deleted"
    for secret in (TOKENS["accessToken"], TOKENS["refreshToken"]):
        Canary(secret).assert_absent(logs=logs.getvalue(), events=events, bodies=[again])


async def test_another_org_gets_404_and_the_hand_off_stays(vault: Vault, postgres_dsn: str) -> None:
    """The hand-off waits sealed: no token in the database's dump."""
    cid = await deleted_token(vault)
    for secret in (TOKENS["accessToken"], TOKENS["refreshToken"]):
        Canary(secret).assert_absent(pg_dump_of=(postgres_dsn, vault.schema))
    foreign = await vault.client.post(take_url(cid), headers=vault.headers("org-b"))
    assert foreign.status_code == 404
    assert await handoffs(vault, cid) == 1
    mine = await vault.client.post(take_url(cid), headers=vault.headers())
    assert mine.status_code == 200


async def test_needs_the_revoke_scope(vault: Vault) -> None:
    cid = await deleted_token(vault)
    others = ["credentials:read", "credentials:write", "credentials:reveal", "credentials:refresh"]
    response = await vault.client.post(take_url(cid), headers=vault.headers(scopes=others))
    assert (response.status_code, response.json()["missingScopes"]) == (403, ["credentials:revoke"])
    assert await handoffs(vault, cid) == 1


async def test_malformed_and_unknown_ids_are_404(vault: Vault) -> None:
    for cid in ("nope", "00000000-0000-0000-0000-000000000000"):
        response = await vault.client.post(take_url(cid), headers=vault.headers())
        assert response.status_code == 404, response.text


async def test_no_hand_off_for_other_types_or_for_expiry(
    vault: Vault, samples: dict[str, Any]
) -> None:
    for credential_type in ("string", "oauth2-client", "oauth2-password"):
        cid = (await vault.create(credential_type, samples[credential_type]))["id"]
        await vault.client.delete(f"/v1/credentials/{cid}", headers=vault.headers())
        assert await handoffs(vault, cid) == 0
    expiring = (await vault.create("oauth2-token", dict(TOKENS)))["id"]
    await vault.pool.execute(
        "UPDATE credentials SET expires_at = now() + interval '1 second' WHERE id = $1::uuid",
        expiring,
    )

    async def expired() -> bool:
        found = "SELECT count(*) FROM credentials WHERE id = $1::uuid"
        return await vault.pool.fetchval(found, expiring) == 0

    await wait_until(expired, timeout=30)
    assert await handoffs(vault, expiring) == 0
    response = await vault.client.post(take_url(expiring), headers=vault.headers())
    assert response.status_code == 404


async def test_hand_offs_past_the_window_are_refused_then_purged(
    settings: VaultSettings, start_vault: Callable[..., Any]
) -> None:
    quick = settings.model_copy(update={"revocation_purge_interval_seconds": 0.2})
    async with start_vault(quick) as vault:
        old, recent = await deleted_token(vault), await deleted_token(vault)
        backdate = "UPDATE revocation_handoffs SET deleted_at = now() - make_interval(secs => $2)"
        await vault.pool.execute(f"{backdate} WHERE credential_id = $1::uuid", old, 901)

        async def purged() -> bool:
            return await handoffs(vault, old) == 0

        await wait_until(purged, timeout=30)
        assert await handoffs(vault, recent) == 1
        gone = await vault.client.post(take_url(old), headers=vault.headers())
        assert gone.status_code == 404


async def test_a_take_past_the_window_is_404_before_the_purge_runs(vault: Vault) -> None:
    cid = await deleted_token(vault)
    await vault.pool.execute(
        "UPDATE revocation_handoffs SET deleted_at = now() - interval '1 hour'"
        " WHERE credential_id = $1::uuid",
        cid,
    )
    response = await vault.client.post(take_url(cid), headers=vault.headers())
    assert response.status_code == 404
    assert await purge_once(vault.pool, vault.settings.revocation_handoff_seconds) >= 1
    assert await handoffs(vault, cid) == 0


async def test_rewrap_keeps_the_data_key_a_hand_off_needs(
    vault: Vault, keyring_file: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """org-a's only data key is used by a hand-off alone: rewrap drops org-b's unused
    key and keeps org-a's, set-min-version says the hand-off holds it (not "run
    rewrap"), the hand-off still opens, and once it is taken the fence can rise."""
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    options = ["--keyring-file", str(keyring_file), "--schema", vault.schema]
    cid = await deleted_token(vault)
    unused = (await vault.create("string", {"value": "v"}, org="org-b"))["id"]
    await vault.client.delete(f"/v1/credentials/{unused}", headers=vault.headers("org-b"))
    assert (await run_cli("rotate-key", *options)).exit_code == 0
    await wait_for_ring(vault, active=2, minimum=1)
    result = await run_cli("rewrap", *options)
    assert result.exit_code == 0, result.output
    assert "dropped 1" in " ".join(result.output.split())
    keys = await vault.pool.fetch("SELECT org_id FROM data_keys WHERE kek_version = 1")
    assert [key["org_id"] for key in keys] == ["org-a"]
    refused = await run_cli("set-min-version", "2", *options)
    assert refused.exit_code == 1
    said = " ".join(refused.output.split())
    assert "1 of the data keys are kept for revocation hand-offs" in said
    assert "run rewrap first" not in said
    taken = await vault.client.post(take_url(cid), headers=vault.headers())
    assert (taken.status_code, taken.json()) == (200, TOKENS)
    assert (await run_cli("rewrap", *options)).exit_code == 0  # drops the freed data key
    assert (await run_cli("set-min-version", "2", *options)).exit_code == 0


def keyed(vault: Vault, key: str) -> dict[str, str]:
    return vault.headers() | {"Idempotency-Key": key}


async def test_a_keyed_take_answers_its_retries_and_nobody_else(vault: Vault) -> None:
    """The broker's retry after a lost answer gets the tokens again; another key or a
    keyless take does not; after the retake window the purge destroys the row."""
    cid = await deleted_token(vault)
    first = await vault.client.post(take_url(cid), headers=keyed(vault, "revoke-1"))
    retry = await vault.client.post(take_url(cid), headers=keyed(vault, "revoke-1"))
    other = await vault.client.post(take_url(cid), headers=keyed(vault, "revoke-2"))
    keyless = await vault.client.post(take_url(cid), headers=vault.headers())
    assert (first.status_code, retry.status_code) == (200, 200)
    assert first.json() == retry.json() == TOKENS
    assert (other.status_code, keyless.status_code) == (404, 404)
    assert await handoffs(vault, cid) == 1  # kept for the retake window
    await vault.pool.execute(
        "UPDATE revocation_handoffs SET taken_at = now() - interval '301 seconds'"
        " WHERE credential_id = $1::uuid",
        cid,
    )
    late = await vault.client.post(take_url(cid), headers=keyed(vault, "revoke-1"))
    assert late.status_code == 404
    assert await purge_once(vault.pool, vault.settings.revocation_handoff_seconds) >= 1
    assert await handoffs(vault, cid) == 0
    outcomes = await vault.pool.fetch(
        "SELECT outcome FROM audit_log WHERE action = 'take_revocation'"
        " AND credential_id = $1::uuid ORDER BY id",
        cid,
    )
    assert [r["outcome"] for r in outcomes] == ["ok", "ok", "not_found", "not_found", "not_found"]


@pytest.mark.parametrize("key", [b"", b"a" * 256, b"with space", b"tab\tkey", "é".encode()])
async def test_a_malformed_idempotency_key_is_422_and_takes_nothing(
    vault: Vault, key: bytes
) -> None:
    cid = await deleted_token(vault)
    headers = [(k.encode(), v.encode()) for k, v in vault.headers().items()]
    headers.append((b"Idempotency-Key", key))
    response = await vault.client.post(take_url(cid), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert await handoffs(vault, cid) == 1
