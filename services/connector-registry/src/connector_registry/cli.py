"""``plugboard registry ...``: catalogue operations for operators.

``import-nango FILE --org ORG`` imports a Nango ``providers.yaml`` into an org's
catalogue straight into the registry's schema (``DATABASE_URL``, the same settings as
the service), with a progress bar: the same importer and the same statement as
``POST /v1/providers:import?format=nango``, in one transaction.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from plugboard_servicekit import db
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from connector_registry import repository_catalogue as repo
from connector_registry.domain import nango
from connector_registry.domain.catalogue import catalogue_entry
from connector_registry.domain.documents import DocumentError
from connector_registry.settings import ConnectorRegistrySettings

app = typer.Typer(help="Connector registry: provider catalogue imports.", no_args_is_help=True)
console = Console(stderr=True)
BATCH = 100


async def _import(path: Path, org: str, schema: str, progress: Progress) -> dict[str, int]:
    task = progress.add_task("parsing", total=None)
    with path.open("rb") as stream:
        result = nango.import_document(nango.load_document(stream))
    unique = {p.name: p for p in result.providers}
    entries = [(catalogue_entry(p), p.auth_types()) for p in unique.values()]
    progress.update(task, description="importing", total=len(entries), completed=0)
    pool = await db.create_pool(ConnectorRegistrySettings().database_url, schema, max_size=2)
    imported = updated = 0
    try:
        async with pool.acquire() as conn, conn.transaction():
            for start in range(0, len(entries), BATCH):
                batch = entries[start : start + BATCH]
                inserted, changed = await repo.upsert_providers(conn, org, batch)
                imported, updated = imported + inserted, updated + changed
                progress.advance(task, len(batch))
    finally:
        await pool.close()
    for skipped in result.skipped:
        console.print(f"skipped {skipped.name}: {skipped.reason}", highlight=False)
    return {"imported": imported, "updated": updated, "skipped": len(result.skipped)}


@app.command("import-nango")
def import_nango(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="providers.yaml")],
    org: Annotated[str, typer.Option(help="Organisation whose catalogue receives them.")],
    schema: Annotated[str, typer.Option(help="The registry's database schema.")] = "registry",
) -> None:
    """Import a Nango providers.yaml (unsupported auth modes are listed as skipped)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, console=console) as progress:
            counts = asyncio.run(_import(file, org, schema, progress))
    except DocumentError as exc:
        console.print(f"[red]{file}: {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"imported {counts['imported']}, updated {counts['updated']}, skipped {counts['skipped']}"
    )
