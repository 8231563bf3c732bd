"""Secrets stay secret: not in a database dump, not in logs, events or problem
responses; and ciphertext moved to another row or org does not decrypt."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from credential_vault.settings import VaultSettings
from plugboard_servicekit.testing import Canary, TopicReader, pg_dump

from .conftest import Vault

pytestmark = pytest.mark.integration

CREDENTIAL_TOPICS = ("credential.created", "credential.updated", "credential.deleted")


def secret_strings(samples: dict[str, Any], canary: str) -> list[str]:
    """The canary, its hex (bytea in a dump) and the body of every private key sample."""
    pem_bodies = [
        line
        for data in samples.values()
        for key in ("key", "privateKey")
        if key in data
        for line in data[key].splitlines()[1:3]
    ]
    return [canary, canary.encode().hex(), *pem_bodies]


async def test_database_dump_holds_no_secret(
    vault: Vault, samples: dict[str, Any], canary: str, postgres_dsn: str
) -> None:
    for credential_type, data in samples.items():
        await vault.create(credential_type, data)
    dump = await asyncio.to_thread(pg_dump, postgres_dsn, vault.schema)
    assert "COPY credentials" in dump or f"COPY {vault.schema}.credentials" in dump
    for secret in secret_strings(samples, canary):
        assert secret not in dump
    Canary(canary).assert_absent(pg_dump_of=(postgres_dsn, vault.schema))


async def test_ciphertext_moved_to_another_row_or_org_fails(
    vault: Vault, samples: dict[str, Any], canary: str
) -> None:
    source = await vault.create("string", samples["string"], org="org-a")
    same_org = await vault.create("string", {"value": "other"}, org="org-a")
    other_org = await vault.create("string", {"value": "other"}, org="org-b")
    for target, org in ((same_org, "org-a"), (other_org, "org-b")):
        await vault.pool.execute(
            "UPDATE credentials t SET ciphertext = s.ciphertext, dek_version = s.dek_version,"
            " kek_version = s.kek_version FROM credentials s WHERE s.id = $1 AND t.id = $2",
            source["id"],
            target["id"],
        )
        response = await vault.reveal(target["id"], org=org)
        assert response.status_code == 500
        assert response.json()["title"] == "Credential cannot be decrypted"
        assert canary not in response.text
    assert (await vault.reveal(source["id"])).json()["data"] == samples["string"]


BAD_BODIES: list[dict[str, Any]] = [
    {"name": "n", "type": "basic-auth", "data": {"username": "u", "password": 5}},
    {"name": "n", "type": "string", "data": {"value": ["{canary}"]}},
    {"name": "n", "type": "basic-auth", "data": {"username": "{canary}"}},
    {"name": "n", "type": "jwt-bearer", "data": {"algorithm": "RS256", "privateKey": "{canary}"}},
    {"name": "n", "type": "certificate", "data": {"certificate": "{canary}", "key": "{canary}"}},
    {"name": "n", "type": "binary", "data": {"valueBase64": "{canary}!"}},
    {
        "name": "n",
        "type": "oauth2-token",
        "data": {"accessToken": "{canary}", "issuedAt": "{canary}"},
    },
    {"name": "n", "type": "{canary}", "data": {"password": "{canary}"}},
    {"name": "n", "type": "string", "data": {"value": "{canary}"}, "expiresAt": "{canary}"},
]


async def refused_bodies(vault: Vault, canary: str) -> list[httpx.Response]:
    """Every bad body (the canary in each), and a truncated one: all refused."""
    refused = []
    headers = vault.headers() | {"Content-Type": "application/json"}
    for body in BAD_BODIES:
        raw = json.dumps(body).replace("{canary}", canary).encode()
        response = await vault.client.post("/v1/credentials", content=raw, headers=headers)
        assert response.status_code in (400, 422), response.text
        refused.append(response)
    cut = f'{{"name": "n", "type": "string", "data": {{"value": "{canary}'.encode()
    truncated = await vault.client.post("/v1/credentials", content=cut, headers=headers)
    assert truncated.status_code == 400
    return [*refused, truncated]


async def test_no_secret_in_logs_events_or_problems(
    settings: VaultSettings,
    start_vault: Callable[..., Any],
    samples: dict[str, Any],
    canary: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logs = io.StringIO()
    monkeypatch.setattr(sys, "stdout", logs)  # the service logs JSON lines to stdout
    bootstrap = settings.kafka_bootstrap_servers
    readers = [await TopicReader(bootstrap, topic).start() for topic in CREDENTIAL_TOPICS]
    async with start_vault(settings) as vault:
        ids = {(await vault.create(t, data))["id"] for t, data in samples.items()}
        for credential_id in ids:
            await vault.reveal(credential_id)
            await vault.client.patch(
                f"/v1/credentials/{credential_id}",
                json={"name": "renamed"},
                headers=vault.headers() | {"Content-Type": "application/merge-patch+json"},
            )
        bodies = await refused_bodies(vault, canary)
        await vault.client.delete(f"/v1/credentials/{next(iter(ids))}", headers=vault.headers())
        events: list[Any] = []
        for topic, reader in zip(CREDENTIAL_TOPICS, readers, strict=True):
            expected = 1 if topic == "credential.deleted" else len(ids)
            found = await reader.events(count=expected, where=lambda e: e.subject in ids)
            assert len(found) == expected
            events += found
            await reader.stop()
    output = logs.getvalue()
    assert '"event": "request"' in output or '"event":"request"' in output
    Canary(canary).assert_absent(logs=output, events=events, bodies=bodies)
    texts = [output, *(e.model_dump_json() for e in events), *(b.text for b in bodies)]
    for secret in secret_strings(samples, canary):
        assert all(secret not in text for text in texts)
