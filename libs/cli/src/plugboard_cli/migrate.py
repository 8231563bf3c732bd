"""Provisioning: each service's role, schema and migrations, and every Kafka topic.

`plugboard dev` runs the same steps before starting services, so the services
themselves start with AUTO_MIGRATE=false, as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

import typer
from plugboard_contracts.topics import all_topic_names
from plugboard_servicekit import db, kafka
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from plugboard_cli.services import ServiceEntry, select_services

TOPIC_PARTITIONS = 6


def migration_progress(console: Console) -> Progress:
    """The progress display shared by `migrate` and `dev`."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        transient=True,
    )


async def migrate_services(
    admin_dsn: str, entries: Sequence[ServiceEntry], progress: Progress
) -> dict[str, str]:
    """Provision and migrate each service; return each service's own DSN by name."""
    task = progress.add_task("migrating", total=len(entries))
    dsns: dict[str, str] = {}
    for entry in entries:
        progress.update(task, description=f"{entry.name}: schema {entry.schema}")
        dsn = await db.provision(admin_dsn, entry.schema, entry.role)
        applied = await db.migrate(dsn, entry.schema, [entry.spec().migrations])
        summary = f"{len(applied)} migration(s) applied" if applied else "up to date"
        progress.console.print(f"[green]✓[/] {entry.name} (schema {entry.schema}): {summary}")
        progress.advance(task)
        dsns[entry.name] = dsn
    return dsns


async def create_topics(bootstrap: str) -> list[str]:
    """Every event topic and its dead-letter topic, with an explicit partition count
    (on Tansu the first client to touch a topic would otherwise decide it)."""
    return await kafka.ensure_topics(bootstrap, all_topic_names(), partitions=TOPIC_PARTITIONS)


def migrate(
    service: Annotated[str | None, typer.Option(help="Only this service (default: all).")] = None,
    database_url: Annotated[
        str, typer.Option(envvar="DATABASE_URL", help="Admin DSN (creates roles and schemas).")
    ] = "",
) -> None:
    """Create each service's role and schema and apply its migrations."""
    if not database_url:
        raise typer.BadParameter("set DATABASE_URL or --database-url", param_hint="DATABASE_URL")
    try:
        entries = select_services(service)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--service") from exc
    console = Console()
    with migration_progress(console) as progress:
        asyncio.run(migrate_services(database_url, entries, progress))


def topics(
    bootstrap: Annotated[
        str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
    ] = "127.0.0.1:9092",
) -> None:
    """Create every event topic and its dead-letter topic (6 partitions each)."""
    created = asyncio.run(create_topics(bootstrap))
    typer.echo(f"{len(created)} topic(s) created, {len(all_topic_names()) - len(created)} existed")
