"""Every service as a real process, started exactly as `plugboard dev` starts them (the
same `plugboard_cli.stack` code), against the test session's PostgreSQL and broker.

For cross-service tests: services talk over real HTTP with their own identity keys,
consume real topics, and can be signalled (kill -9 a replica) like in production.
The services use their real schemas (registry, vault, oauth, installation) in the
session database, so state outlives one fixture instance: isolate tests by org.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.embedded import free_port


@dataclass(frozen=True)
class ServiceProcesses:
    """The running services: `urls` by service name ("credential-vault", ...)."""

    urls: Mapping[str, str]
    admin_dsn: str
    bootstrap: str
    state_dir: Path
    service_keys_dir: Path
    jwt_private_key: str
    env: Mapping[str, str]
    """The extra environment every service got (on top of what `plugboard dev` sets)."""
    _supervisor: Any

    def url(self, name: str) -> str:
        """Base URL by service name or package (`credential-vault` or `credential_vault`)."""
        return self.urls[name.replace("_", "-") if name not in self.urls else name]

    def token(self, org: str, scopes: Iterable[str], sub: str = "test-user") -> str:
        return mint_token(self.jwt_private_key, sub=sub, org=org, scopes=scopes)

    def headers(self, org: str, scopes: Iterable[str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org, scopes)}"}

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The service's process, e.g. to `send_signal(signal.SIGKILL)` it."""
        return self._supervisor.child(name.replace("_", "-")).proc

    def log(self, name: str) -> str:
        """Everything the service wrote so far (JSON lines), for canaries and failures."""
        return self._supervisor.child(name.replace("_", "-")).log_path.read_text(errors="replace")

    def logs(self) -> list[str]:
        return [self.log(name) for name in self.urls]


def _write_platform_keys(state_dir: Path, jwt_keys: tuple[str, str]) -> None:
    """The session's platform keys where `ensure_keys` looks, so tests mint with them."""
    from plugboard_cli.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME

    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / PRIVATE_KEY_NAME).write_text(jwt_keys[0], encoding="utf-8")
    (state_dir / PRIVATE_KEY_NAME).chmod(0o600)
    (state_dir / PUBLIC_KEY_NAME).write_text(jwt_keys[1], encoding="utf-8")


_KEYRINGS: dict[str, str] = {}
"""The vault key ring each database's stacks share, by admin DSN (see `_share_keyring`)."""


def _share_keyring(admin_dsn: str, keyring_file: Path) -> None:
    """Every stack on one database gets the key ring the first one made there.

    The services run on their real schemas, which outlive one stack: a second stack with a
    fresh ring would be refused by the vault (its key-check values contradict the data
    keys already stored) and never become ready."""
    known = _KEYRINGS.get(admin_dsn)
    if known is None:
        _KEYRINGS[admin_dsn] = keyring_file.read_text(encoding="utf-8")
    else:
        keyring_file.write_text(known, encoding="utf-8")
        keyring_file.chmod(0o600)


def _provision(admin_dsn: str, bootstrap: str, entries: Any) -> dict[str, str]:
    """In a thread of its own: the caller's event loop (pytest-asyncio's) stays untouched."""
    from plugboard_cli.stack import provision

    with ThreadPoolExecutor(1) as pool:
        work = provision(admin_dsn, bootstrap, entries=entries)
        return pool.submit(asyncio.run, work).result()


@contextlib.contextmanager
def start_service_processes(
    admin_dsn: str,
    bootstrap: str,
    *,
    state_dir: Path,
    jwt_keys: tuple[str, str],
    extra_env: Mapping[str, str] | None = None,
    services: Iterable[str] | None = None,
    timeout: float = 60.0,
) -> Iterator[ServiceProcesses]:
    """Provision, start (`services`, default all) on free ports, wait for every /readyz,
    yield, then stop them (SIGTERM, SIGKILL after the grace period)."""
    from plugboard_cli.keys import ensure_keys, ensure_service_keys
    from plugboard_cli.services import SERVICES, select_services
    from plugboard_cli.stack import StackFiles, StackPlan, spawn_services, wait_ready
    from plugboard_cli.supervisor import Supervisor

    _write_platform_keys(state_dir, jwt_keys)
    keys = ensure_keys(state_dir)
    _share_keyring(admin_dsn, keys.keyring)
    files = StackFiles(
        keys.public, keys.keyring, ensure_service_keys(state_dir / "service-keys"), keys.private
    )
    wanted = [entry for name in services or [] for entry in select_services(name)] or SERVICES
    dsns = _provision(admin_dsn, bootstrap, wanted)
    ports = {entry.name: free_port() for entry in SERVICES}
    # Each stack its own consumer groups: a group an earlier stack's killed members left
    # mid-rebalance on the embedded broker can keep a new member rejoining for minutes.
    env = {"KAFKA_GROUP_PREFIX": f"{state_dir.name}-", **(extra_env or {})}
    plan = StackPlan(dsns, bootstrap, files, ports, env, wanted)
    supervisor = Supervisor(grace=10.0)
    try:
        urls = spawn_services(supervisor, plan, state_dir / "logs")
        wait_ready(supervisor, urls, timeout, consuming=True)
        yield ServiceProcesses(
            urls, admin_dsn, bootstrap, state_dir, files.service_keys_dir, jwt_keys[0],
            env, supervisor,
        )  # fmt: skip
    finally:
        supervisor.stop()


__all__ = ["ServiceProcesses", "start_service_processes"]
