"""Key rotation through the operator commands against a live vault: rotate-key,
a partial then resumed rewrap, set-min-version refused until nothing old remains,
and a ciphertext under the retired version refused afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from credential_vault.cli import app as vault_cli
from credential_vault.crypto import Envelope
from credential_vault.keyring import KeyStore, load_keyring_file, save_keyring
from credential_vault.rotation import rewrap_batch
from typer.testing import CliRunner, Result

from .conftest import Vault, wait_until

pytestmark = pytest.mark.integration


async def run_cli(*args: str) -> Result:
    """The typer app in a thread: it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, vault_cli, list(args))


async def key_versions(vault: Vault) -> list[tuple[int, int]]:
    rows = await vault.pool.fetch("SELECT dek_version, kek_version FROM credentials ORDER BY id")
    return [(row["dek_version"], row["kek_version"]) for row in rows]


async def wait_for_ring(vault: Vault, active: int, minimum: int) -> None:
    keys: KeyStore = vault.deps.keys

    async def reloaded() -> bool:
        return (keys.ring.active, keys.ring.min_decrypt_version) == (active, minimum)

    await wait_until(reloaded, timeout=10)


async def test_rotate_rewrap_and_retire(
    vault: Vault,
    samples: dict[str, Any],
    keyring_file: Path,
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    keyring = ["--keyring-file", str(keyring_file)]
    schema = ["--schema", vault.schema]
    created = {t: (await vault.create(t, data))["id"] for t, data in samples.items()}
    other_org = (await vault.create("string", samples["string"], org="org-b"))["id"]
    gone = (await vault.create("none", {}, org="org-c"))["id"]
    await vault.client.delete(f"/v1/credentials/{gone}", headers=vault.headers("org-c"))
    old = await vault.pool.fetchrow(
        "SELECT c.ciphertext, d.wrapped FROM credentials c JOIN data_keys d"
        " ON d.org_id = c.org_id AND d.version = c.dek_version WHERE c.id = $1",
        created["basic-auth"],
    )

    assert (await run_cli("rotate-key", *keyring, *schema)).exit_code == 0
    await wait_for_ring(vault, active=2, minimum=1)
    fresh = (await vault.create("string", {"value": "after rotation"}))["id"]
    versions = dict(
        zip(sorted([*created.values(), other_org, fresh]), await key_versions(vault), strict=True)
    )
    assert versions[fresh] == (2, 2)
    assert versions[other_org] == (1, 1)

    refused = await run_cli("set-min-version", "2", *keyring, *schema)
    assert refused.exit_code == 1
    assert "run rewrap first" in " ".join(refused.output.split())

    store = KeyStore(keyring_file, None)
    store.load()
    assert await rewrap_batch(vault.pool, Envelope(store), 3) == 3  # interrupted after a batch
    result = await run_cli("rewrap", *keyring, *schema, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    summary = f"Rewrapped {len(created) + 1 - 3} credential(s); dropped 3"
    assert summary in " ".join(result.output.split())
    assert {kek for _, kek in await key_versions(vault)} == {2}

    assert (await run_cli("set-min-version", "2", *keyring, *schema)).exit_code == 0
    assert load_keyring_file(keyring_file).min_decrypt_version == 2
    await wait_for_ring(vault, active=2, minimum=2)
    for credential_type, credential_id in created.items():
        revealed = await vault.reveal(credential_id)
        assert revealed.json()["data"] == samples[credential_type]
    assert (await vault.reveal(other_org, org="org-b")).status_code == 200

    await vault.pool.execute(
        "INSERT INTO data_keys (org_id, version, kek_version, wrapped) VALUES ('org-a', 1, 1, $1)",
        old["wrapped"],
    )
    await vault.pool.execute(
        "UPDATE credentials SET ciphertext = $2, dek_version = 1, kek_version = 1 WHERE id = $1",
        created["basic-auth"],
        old["ciphertext"],
    )
    retired = await vault.reveal(created["basic-auth"])
    assert (retired.status_code, retired.json()["title"]) == (503, "Key version unavailable")


async def test_a_forked_ring_file_is_refused_and_the_vault_keeps_serving(
    vault: Vault,
    keyring_file: Path,
    tmp_path: Path,
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two rotate-key runs from the same base file: the second is refused; a forked
    file copied over the ring anyway is refused at reload and the old ring serves."""
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    stale_copy = tmp_path / "operator-b.json"
    stale_copy.write_text(keyring_file.read_text())
    schema = ["--schema", vault.schema]
    assert (
        await run_cli("rotate-key", "--keyring-file", str(keyring_file), *schema)
    ).exit_code == 0
    await wait_for_ring(vault, active=2, minimum=1)
    created = (await vault.create("string", {"value": "sealed under v2"}))["id"]

    second = await run_cli("rotate-key", "--keyring-file", str(stale_copy), *schema)
    assert second.exit_code == 1
    assert "stale copy" in " ".join(second.output.split())
    save_keyring(keyring_file, load_keyring_file(stale_copy).rotated())  # forced in anyway

    async def refused() -> bool:
        return "refused key ring file" in str((await vault.client.get("/readyz")).json())

    await wait_until(refused, timeout=10)
    ready = await vault.client.get("/readyz")  # every replica got the file: none may drop out
    assert (ready.status_code, ready.json()["checks"]["keyring"]) == (200, "ok")
    assert "key version 2 changed" in ready.json()["reported"]["keyring_file"]
    assert (await vault.reveal(created)).json()["data"] == {"value": "sealed under v2"}
    assert (await vault.create("string", {"value": "still writable"}))["version"] == 1


async def test_commands_refuse_without_a_key_ring(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    offline = ["--offline", "--keyring-file", str(missing)]
    assert (await run_cli("rotate-key", *offline)).exit_code == 1
    assert (await run_cli("init-keyring", "--keyring-file", str(missing))).exit_code == 0
    assert (await run_cli("init-keyring", "--keyring-file", str(missing))).exit_code == 1
    assert (await run_cli("rotate-key", *offline)).exit_code == 0
    assert load_keyring_file(missing).active == 2
