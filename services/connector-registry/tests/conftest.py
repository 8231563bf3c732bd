"""Fixtures of the registry's tests: a real credential-vault process, registry apps in process."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from connector_registry.app import SPEC
from connector_registry.deps import RegistryDeps
from connector_registry.settings import ConnectorRegistrySettings
from plugboard_servicekit.auth import mint_token
from plugboard_servicekit.embedded import server_tempdir
from plugboard_servicekit.testing import AppClient, ServiceProcesses, service_client, test_settings
from plugboard_servicekit.testing.processes import start_service_processes

Registry = AppClient[ConnectorRegistrySettings, RegistryDeps]
ALL_SCOPES = (
    "connectors:read", "connectors:write", "providers:read", "providers:write",
    "provider-apps:read", "provider-apps:write",
)  # fmt: skip


@pytest.fixture(scope="session")
def vault_process(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str]
) -> Iterator[ServiceProcesses]:
    """The real credential-vault as a process: client secrets land there."""
    state = server_tempdir("registry-vault-")
    try:
        with start_service_processes(
            postgres_dsn, kafka_bootstrap, state_dir=state, jwt_keys=jwt_keys,
            services=["credential-vault"],
        ) as processes:  # fmt: skip
            yield processes
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def registry_settings(
    postgres_dsn: str, kafka_bootstrap: str, jwt_keys: tuple[str, str],
    vault_process: ServiceProcesses,
) -> ConnectorRegistrySettings:  # fmt: skip
    return test_settings(
        SPEC, postgres_dsn=postgres_dsn, kafka_bootstrap=kafka_bootstrap,
        jwt_public_key=jwt_keys[1], vault_url=vault_process.url("credential-vault"),
        service_keys_dir=vault_process.service_keys_dir,
    )  # fmt: skip


@pytest.fixture(scope="module")
async def registry(registry_settings: ConnectorRegistrySettings) -> AsyncIterator[Registry]:
    """One registry app per test module (tests keep apart by org)."""
    async with service_client(SPEC, registry_settings, name=SPEC.name) as client:
        yield client


@pytest.fixture
def org() -> str:
    return f"org-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def auth(jwt_keys: tuple[str, str], org: str) -> dict[str, str]:
    return headers(jwt_keys, org)


def headers(jwt_keys: tuple[str, str], org: str, *scopes: str) -> dict[str, str]:
    token = mint_token(jwt_keys[0], sub="test-user", org=org, scopes=scopes or ALL_SCOPES)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_headers(jwt_keys: tuple[str, str]) -> Callable[..., dict[str, str]]:
    """``make_headers(org, *scopes)``: a bearer header (every registry scope by default)."""
    return lambda org, *scopes: headers(jwt_keys, org, *scopes)


@pytest.fixture(scope="session")
def all_scopes() -> tuple[str, ...]:
    return ALL_SCOPES


def data_file(name: str) -> Path:
    return Path(__file__).parent / "data" / name
