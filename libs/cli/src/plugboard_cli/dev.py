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
import time
from pathlib import Path
from typing import Annotated

import typer
from plugboard_servicekit.db import redact_dsn
from plugboard_servicekit.embedded import (
    EmbeddedServerError,
    port_in_use,
    start_postgres,
    start_tansu,
    stop_orphaned_postgres,
)
from plugboard_servicekit.pg_install import remove_data_dir
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from plugboard_cli.keys import (
    DEFAULT_STATE_DIR,
    PRIVATE_KEY_NAME,
    ensure_keys,
    ensure_service_keys,
    service_keys_dir,
)
from plugboard_cli.services import DEFAULT_PORT_BASE, SERVICES, required_scopes
from plugboard_cli.stack import (
    StackError,
    StackFiles,
    StackPlan,
    fail_if_exited,
    oauth_dev_env,
    ports_from_base,
    provision,
    spawn_services,
    wait_ready,
)
from plugboard_cli.supervisor import Supervisor, signals_ignored, stop_on_signals
from plugboard_cli.token import mint

DEV_ORG = "dev-org"
DEV_TOKEN_TTL = 12 * 3600


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


def _wait_ready(
    supervisor: Supervisor, urls: dict[str, str], timeout: float, console: Console
) -> None:
    """Every /readyz 200, with a spinner per service."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks = {name: progress.add_task(f"{name}: starting", total=1) for name in urls}

        def ready(name: str) -> None:
            progress.update(tasks[name], description=f"[green]✓[/] {name}", completed=1)

        wait_ready(supervisor, urls, timeout, on_ready=ready)


def _files(state: Path) -> StackFiles:
    keys = ensure_keys(state)
    identities = ensure_service_keys(service_keys_dir(state))
    return StackFiles(keys.public, keys.keyring, identities, keys.private)


def _print_summary(
    console: Console, plan: StackPlan, admin_dsn: str, token: str, state: Path
) -> None:
    table = Table(title="Plugboard dev stack")
    table.add_column("what")
    table.add_column("where")
    for name, url in plan.urls.items():
        table.add_row(name, url)
    table.add_row("kafka", plan.bootstrap)
    table.add_row("service keys", str(plan.files.service_keys_dir))
    table.add_row("logs", str(state / "logs"))
    console.print(table)
    for key, value in oauth_dev_env(plan.urls).items():
        console.print(f"{key}={value}", soft_wrap=True, markup=False, highlight=False)
    console.print(
        "  (the broker reaches http and private addresses only on these hosts; OAuth "
        "providers redirect to OAUTH_PUBLIC_URL/v1/oauth/callback)",
        markup=False,
        highlight=False,
    )
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
    files = _files(state)
    dsns = asyncio.run(provision(admin_dsn, bootstrap, console))
    plan = StackPlan(dsns, bootstrap, files, ports_from_base(port_base))
    supervisor = Supervisor()
    stack.callback(supervisor.stop)
    urls = spawn_services(supervisor, plan, state / "logs")
    _wait_ready(supervisor, urls, timeout, console)
    scopes = required_scopes(entry.spec() for entry in SERVICES)
    private_key = state / PRIVATE_KEY_NAME
    token = mint(private_key, org=DEV_ORG, scopes=scopes, sub="dev", ttl=DEV_TOKEN_TTL)
    _print_summary(console, plan, admin_dsn, token, state)
    console.print("[bold green]ready[/] — Ctrl-C stops everything")
    while True:
        fail_if_exited(supervisor)
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
