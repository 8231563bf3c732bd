"""`plugboard dev`: the whole platform on one machine, no Docker.

Embedded PostgreSQL (data kept in the state dir) and in-memory Tansu, every topic,
every schema migrated, then each service as its own uvicorn process. Ctrl-C,
SIGTERM or a failure stops services first, then the broker, then the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from plugboard_servicekit.db import redact_dsn
from plugboard_servicekit.embedded import (
    EmbeddedServerError,
    port_in_use,
    remove_data_dir,
    start_postgres,
    start_tansu,
    stop_orphaned_postgres,
)
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from plugboard_cli.keys import DEFAULT_STATE_DIR, KeyFiles, ensure_keys
from plugboard_cli.migrate import create_topics, migrate_services, migration_progress
from plugboard_cli.services import DEFAULT_PORT_BASE, SERVICES, ServiceEntry, required_scopes
from plugboard_cli.supervisor import Supervisor, is_ready, signals_ignored, stop_on_signals
from plugboard_cli.token import mint

DEV_ORG = "dev-org"
DEV_TOKEN_TTL = 12 * 3600


class StackError(RuntimeError):
    """The stack cannot run; the message names the culprit and shows its log."""


def _prepare_state(state_dir: Path, reset: bool) -> Path:
    """The state dir (absolute, created); emptied first on --reset."""
    state = state_dir.expanduser().resolve()
    if reset and state.exists():
        stop_orphaned_postgres(state / "postgres")
        remove_data_dir(state / "postgres")  # relocated out of a 0700 checkout: both go
        shutil.rmtree(state)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # the database's system user must traverse it
    return state


def _check_ports_free(port_base: int, kafka_port: int) -> None:
    """Fail before starting anything when a port is taken (say, by another stack)."""
    wanted = {entry.name: entry.port_for(port_base) for entry in SERVICES}
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        wanted["kafka"] = kafka_port
    taken = [f"{name} ({port})" for name, port in wanted.items() if port_in_use("127.0.0.1", port)]
    if taken:
        raise StackError(
            f"ports already in use: {', '.join(taken)}; is another stack running? "
            "Use --port-base / --kafka-port (PLUGBOARD_DEV_PORT_BASE / PLUGBOARD_DEV_KAFKA_PORT)"
        )


def _start_infrastructure(
    stack: contextlib.ExitStack, state: Path, kafka_port: int, console: Console
) -> tuple[str, str]:
    """Admin DSN and bootstrap: from DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS, or embedded."""
    admin_dsn = os.environ.get("DATABASE_URL", "")
    if not admin_dsn:
        with console.status("starting PostgreSQL"):
            postgres = start_postgres(state / "postgres")
        stack.callback(postgres.stop)
        admin_dsn = postgres.dsn
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap:
        with console.status(f"starting Tansu on port {kafka_port}"):
            broker = start_tansu(kafka_port, log_file=state / "logs" / "tansu.log")
        stack.callback(broker.stop)
        bootstrap = broker.bootstrap
    return admin_dsn, bootstrap


async def _provision(admin_dsn: str, bootstrap: str, console: Console) -> dict[str, str]:
    """Topics and schemas, before any service starts; returns each service's DSN."""
    with console.status("creating topics"):
        created = await create_topics(bootstrap)
    console.print(f"[green]✓[/] topics: {len(created)} created")
    with migration_progress(console) as progress:
        return await migrate_services(admin_dsn, SERVICES, progress)


def _service_env(
    entry: ServiceEntry, dsn: str, bootstrap: str, keys: KeyFiles, port: int
) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PLUGBOARD_JWT_PUBLIC_KEY", None)  # it would win over the key file
    env.update(
        DATABASE_URL=dsn,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        PLUGBOARD_JWT_PUBLIC_KEY_FILE=str(keys.public),
        KAFKA_SESSION_TIMEOUT_MS="2000",
        KAFKA_HEARTBEAT_INTERVAL_MS="300",
        AUTO_MIGRATE="false",
        PYTHONUNBUFFERED="1",
    )
    env[f"{entry.env_prefix}HTTP_HOST"] = "127.0.0.1"
    env[f"{entry.env_prefix}HTTP_PORT"] = str(port)
    env["VAULT_KEYRING_FILE"] = str(keys.keyring)  # only the vault reads VAULT_*
    return env


def _spawn_services(
    supervisor: Supervisor,
    state: Path,
    dsns: dict[str, str],
    bootstrap: str,
    keys: KeyFiles,
    port_base: int,
) -> dict[str, str]:
    """Start every service; return its base URL by name."""
    urls: dict[str, str] = {}
    for entry in SERVICES:
        port = entry.port_for(port_base)
        argv = [sys.executable, *entry.command[1:]]
        env = _service_env(entry, dsns[entry.name], bootstrap, keys, port)
        supervisor.spawn(entry.name, argv, env, state / "logs" / f"{entry.name}.log")
        urls[entry.name] = f"http://127.0.0.1:{port}"
    return urls


def _fail_if_exited(supervisor: Supervisor) -> None:
    for child in supervisor.exited():
        raise StackError(
            f"{child.name} exited with code {child.proc.returncode} "
            f"(log: {child.log_path}):\n{child.log_tail()}"
        )


def _wait_ready(
    supervisor: Supervisor, urls: dict[str, str], timeout: float, console: Console
) -> None:
    """Poll every /readyz until all answer 200; fail fast if a service dies."""
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with httpx.Client(timeout=1.0) as client, Progress(*columns, console=console) as progress:
        tasks = {name: progress.add_task(f"{name}: starting", total=1) for name in urls}
        while pending:
            _fail_if_exited(supervisor)
            for name, url in list(pending.items()):
                if is_ready(client, f"{url}/readyz"):
                    progress.update(tasks[name], description=f"[green]✓[/] {name}", completed=1)
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise StackError(_not_ready_report(supervisor, pending, timeout))
            time.sleep(0.2)


def _not_ready_report(supervisor: Supervisor, pending: dict[str, str], timeout: float) -> str:
    lines = [f"not ready after {timeout:.0f}s: {', '.join(pending)}"]
    for child in supervisor.children:
        if child.name in pending:
            lines += [f"--- {child.name} ({child.log_path}) ---", child.log_tail()]
    return "\n".join(lines)


def _print_summary(
    console: Console,
    urls: dict[str, str],
    admin_dsn: str,
    bootstrap: str,
    token: str,
    state: Path,
) -> None:
    table = Table(title="Plugboard dev stack")
    table.add_column("what")
    table.add_column("where")
    for name, url in urls.items():
        table.add_row(name, url)
    table.add_row("kafka", bootstrap)
    table.add_row("logs", str(state / "logs"))
    console.print(table)
    # unwrapped, so they can be copied whole
    console.print(f"postgres (admin): {redact_dsn(admin_dsn)}", soft_wrap=True, markup=False)
    console.print(f"token ({DEV_ORG}, all scopes): {token}", soft_wrap=True, highlight=False)


def _run(
    console: Console,
    stack: contextlib.ExitStack,
    state: Path,
    port_base: int,
    kafka_port: int,
    timeout: float,
) -> None:
    _check_ports_free(port_base, kafka_port)
    admin_dsn, bootstrap = _start_infrastructure(stack, state, kafka_port, console)
    keys = ensure_keys(state)
    dsns = asyncio.run(_provision(admin_dsn, bootstrap, console))
    supervisor = Supervisor()
    stack.callback(supervisor.stop)
    urls = _spawn_services(supervisor, state, dsns, bootstrap, keys, port_base)
    _wait_ready(supervisor, urls, timeout, console)
    scopes = required_scopes(entry.spec() for entry in SERVICES)
    token = mint(keys.private, org=DEV_ORG, scopes=scopes, sub="dev", ttl=DEV_TOKEN_TTL)
    _print_summary(console, urls, admin_dsn, bootstrap, token, state)
    console.print("[bold green]ready[/] — Ctrl-C stops everything")
    while True:
        _fail_if_exited(supervisor)
        time.sleep(0.5)


def dev(
    state_dir: Annotated[
        Path, typer.Option(help="Database files, keys and logs (kept across runs).")
    ] = DEFAULT_STATE_DIR,
    reset: Annotated[bool, typer.Option(help="Delete the state dir first.")] = False,
    port_base: Annotated[
        int, typer.Option(envvar="PLUGBOARD_DEV_PORT_BASE", help="Services listen on BASE+1..4.")
    ] = DEFAULT_PORT_BASE,
    kafka_port: Annotated[
        int, typer.Option(envvar="PLUGBOARD_DEV_KAFKA_PORT", help="Embedded broker port.")
    ] = 9092,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every /readyz.")] = 30.0,
) -> None:
    """Run PostgreSQL, a Kafka-protocol broker and every service locally."""
    console = Console()
    stack = contextlib.ExitStack()
    with stop_on_signals():
        try:
            state = _prepare_state(state_dir, reset)
            _run(console, stack, state, port_base, kafka_port, timeout)
        except KeyboardInterrupt:
            console.print("stopping…")
        except (StackError, EmbeddedServerError) as exc:
            # Text, not markup: log lines may hold [brackets]
            console.print(Panel(Text(str(exc)), title="plugboard dev failed", border_style="red"))
            raise typer.Exit(1) from exc
        finally:
            with signals_ignored():
                stack.close()
            console.print("stopped")
