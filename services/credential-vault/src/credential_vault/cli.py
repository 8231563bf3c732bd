"""``plugboard vault ...``: key ring management for operators.

Runbook: ``rotate-key`` (replicas reload the ring within seconds and seal new
writes under the new version), ``rewrap`` (online, resumable), then
``set-min-version N`` to refuse anything older. Each command reads the same
settings as the service (``VAULT_KEYRING_FILE``, ``DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from plugboard_servicekit import db
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from credential_vault.crypto import Envelope
from credential_vault.keyring import KeyRingError, KeyStore, generate_keyring_file
from credential_vault.rotation import (
    REPLICA_WINDOW_SECONDS,
    RotationRefusedError,
    pending_rewrap,
    rewrap,
    rotate_key,
    set_min_version,
)
from credential_vault.settings import VaultSettings

T = TypeVar("T")

app = typer.Typer(help="Credential vault key management.", no_args_is_help=True)
console = Console(stderr=True)

KeyringOption = Annotated[
    Path | None, typer.Option(help="Key ring file [default: VAULT_KEYRING_FILE].")
]
SchemaOption = Annotated[str, typer.Option(help="The vault's database schema.")]
WindowOption = Annotated[
    float,
    typer.Option(min=1, help="Replicas that reported their key ring this recently are live."),
]


def _keyring_path(option: Path | None) -> Path:
    path = option or VaultSettings().keyring_file
    if path is None:
        console.print("[red]No key ring file: pass --keyring-file or set VAULT_KEYRING_FILE.")
        raise typer.Exit(2)
    return path


def _run(work: Callable[[asyncpg.Pool], Awaitable[T]], schema: str) -> T:
    """Run ``work`` with a small pool on the vault schema; refusals exit with status 1."""

    async def main() -> T:
        pool = await db.create_pool(VaultSettings().database_url, schema, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return _run_offline(main)


def _run_offline(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on a fresh event loop; refusals exit with status 1."""
    try:
        return asyncio.run(_awaited(work))
    except (RotationRefusedError, KeyRingError) as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from None


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@app.command("init-keyring")
def init_keyring(keyring_file: KeyringOption = None) -> None:
    """Create a key ring file with one fresh key (refuses to overwrite)."""
    path = _keyring_path(keyring_file)
    try:
        generate_keyring_file(path)
    except FileExistsError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from None
    console.print(f"Created {path} (key version 1).")


@app.command("rotate-key")
def rotate_key_command(
    keyring_file: KeyringOption = None,
    schema: SchemaOption = "vault",
    offline: Annotated[
        bool, typer.Option(help="Skip the database checks (no vault database exists yet).")
    ] = False,
    live_within: WindowOption = REPLICA_WINDOW_SECONDS,
) -> None:
    """Add a key version and make it active for new writes.

    Refused when the file is a stale copy (the database or a replica knows a newer
    version) or when another rotation claimed the same version first."""
    path = _keyring_path(keyring_file)
    if offline:
        version = _run_offline(lambda: rotate_key(path, None))
    else:
        version = _run(lambda pool: rotate_key(path, pool, live_within), schema)
    console.print(f"Key version {version} is active. Next: plugboard vault rewrap")


@app.command("rewrap")
def rewrap_command(
    keyring_file: KeyringOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    schema: SchemaOption = "vault",
    live_within: WindowOption = REPLICA_WINDOW_SECONDS,
) -> None:
    """Re-encrypt every credential under the active key version (online, resumable)."""
    keys = KeyStore(_keyring_path(keyring_file), None)

    async def work(pool: asyncpg.Pool) -> tuple[int, int]:
        keys.load()
        envelope = Envelope(keys)
        total = await pending_rewrap(pool, envelope)
        columns = (TextColumn("rewrap"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("rewrap", total=total)
            return await rewrap(
                pool,
                envelope,
                batch_size=batch_size,
                on_batch=lambda moved: progress.advance(task, moved),
                window=live_within,
            )

    moved, dropped = _run(work, schema)
    console.print(f"Rewrapped {moved} credential(s); dropped {dropped} unused data key(s).")


@app.command("set-min-version")
def set_min_version_command(
    version: Annotated[int, typer.Argument(min=1)],
    keyring_file: KeyringOption = None,
    schema: SchemaOption = "vault",
    live_within: WindowOption = REPLICA_WINDOW_SECONDS,
) -> None:
    """Refuse to decrypt anything under older key versions (only once nothing uses them
    and every live replica holds a ring at least that new)."""
    path = _keyring_path(keyring_file)
    _run(lambda pool: set_min_version(pool, path, version, live_within), schema)
    console.print(f"minDecryptVersion is now {version}.")
