"""Starting the services as processes: one code path for `plugboard dev` and for the
test fixture `service_processes`, so the tests run the stack exactly as dev does.

Provision (topics, roles, schemas, migrations), then one `python -m <package>` per
service with the same environment: its own DSN, the broker, the key files, every
service's base URL, and `AUTO_MIGRATE=false` as in production.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from plugboard_cli.migrate import create_topics, migrate_services, migration_progress
from plugboard_cli.services import SERVICES, ServiceEntry
from plugboard_cli.supervisor import Supervisor, is_ready

LOOPBACK_EGRESS = "127.0.0.1,localhost"
"""`OAUTH_EGRESS_ALLOW` in dev: a provider (or mock) on this machine is reachable."""


class StackError(RuntimeError):
    """The stack cannot run; the message names the culprit and shows its log."""


@dataclass(frozen=True)
class StackFiles:
    """The files every service process reads."""

    jwt_public_key: Path
    keyring: Path
    service_keys_dir: Path
    jwt_private_key: Path
    """Only installation reads it: it signs the platform tokens API keys are exchanged for."""


@dataclass(frozen=True)
class StackPlan:
    """Where each service listens and what it connects to."""

    dsns: Mapping[str, str]
    bootstrap: str
    files: StackFiles
    ports: Mapping[str, int]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    entries: Sequence[ServiceEntry] = SERVICES

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of every service, by name."""
        return {entry.name: f"http://127.0.0.1:{self.ports[entry.name]}" for entry in SERVICES}


def ports_from_base(port_base: int) -> dict[str, int]:
    """8001..8004 shifted to another base, by service name."""
    return {entry.name: entry.port_for(port_base) for entry in SERVICES}


def url_env(urls: Mapping[str, str]) -> dict[str, str]:
    """`PLUGBOARD_<X>_URL` for every service: how services find each other."""
    return {entry.url_env: urls[entry.name] for entry in SERVICES if entry.name in urls}


def oauth_dev_env(urls: Mapping[str, str]) -> dict[str, str]:
    """The broker's dev settings: loopback providers allowed, the callback base URL."""
    return {"OAUTH_EGRESS_ALLOW": LOOPBACK_EGRESS, "OAUTH_PUBLIC_URL": urls["oauth-broker"]}


def service_env(entry: ServiceEntry, plan: StackPlan) -> dict[str, str]:
    """The process environment of one service."""
    env = dict(os.environ)
    env.pop("PLUGBOARD_JWT_PUBLIC_KEY", None)  # it would win over the key file
    env.update(
        DATABASE_URL=plan.dsns[entry.name],
        KAFKA_BOOTSTRAP_SERVERS=plan.bootstrap,
        PLUGBOARD_JWT_PUBLIC_KEY_FILE=str(plan.files.jwt_public_key),
        PLUGBOARD_SERVICE_KEYS_DIR=str(plan.files.service_keys_dir),
        KAFKA_SESSION_TIMEOUT_MS="2000",
        KAFKA_HEARTBEAT_INTERVAL_MS="300",
        AUTO_MIGRATE="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(url_env(plan.urls))
    env.update(oauth_dev_env(plan.urls))
    env[f"{entry.env_prefix}HTTP_HOST"] = "127.0.0.1"
    env[f"{entry.env_prefix}HTTP_PORT"] = str(plan.ports[entry.name])
    env["VAULT_KEYRING_FILE"] = str(plan.files.keyring)  # only the vault reads VAULT_*
    if entry.name == "installation":
        env["INSTALLATION_TOKEN_SIGNING_KEY_FILE"] = str(plan.files.jwt_private_key)
    env.update(plan.extra_env)
    return env


async def provision(
    admin_dsn: str,
    bootstrap: str,
    console: Console | None = None,
    entries: Sequence[ServiceEntry] = SERVICES,
) -> dict[str, str]:
    """Topics and schemas, before any service starts; returns each service's DSN."""
    console = console or Console(file=io.StringIO())
    created = await create_topics(bootstrap)
    console.print(f"[green]✓[/] topics: {len(created)} created")
    with migration_progress(console) as progress:
        return await migrate_services(admin_dsn, entries, progress)


def spawn_services(supervisor: Supervisor, plan: StackPlan, log_dir: Path) -> dict[str, str]:
    """Start every service of the plan (`python -m <package>`); base URLs by name."""
    for entry in plan.entries:
        argv = [sys.executable, *entry.command[1:]]
        supervisor.spawn(entry.name, argv, service_env(entry, plan), log_dir / f"{entry.name}.log")
    return {name: url for name, url in plan.urls.items() if name in supervisor.names()}


def fail_if_exited(supervisor: Supervisor) -> None:
    for child in supervisor.exited():
        raise StackError(
            f"{child.name} exited with code {child.proc.returncode} "
            f"(log: {child.log_path}):\n{child.log_tail()}"
        )


def wait_ready(
    supervisor: Supervisor,
    urls: Mapping[str, str],
    timeout: float,
    on_ready: Callable[[str], None] = lambda name: None,
    *,
    consuming: bool = False,
) -> None:
    """Poll every /readyz until all answer 200 (and, with `consuming`, run their
    messaging); StackError when a service dies first or is not ready in time (with the
    logs of the ones that are not)."""
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            fail_if_exited(supervisor)
            for name, url in list(pending.items()):
                if is_ready(client, f"{url}/readyz", consuming=consuming):
                    on_ready(name)
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise StackError(_not_ready_report(supervisor, pending, timeout))
            time.sleep(0.2)


def _not_ready_report(supervisor: Supervisor, pending: Mapping[str, str], timeout: float) -> str:
    lines = [f"not ready after {timeout:.0f}s: {', '.join(pending)}"]
    for child in supervisor.children:
        if child.name in pending:
            lines += [f"--- {child.name} ({child.log_path}) ---", child.log_tail()]
    return "\n".join(lines)
