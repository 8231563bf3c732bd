"""The connector-registry service: its composition root, its ``ServiceSpec`` and the app.

Run: ``python -m connector_registry`` (binds ``REGISTRY_HTTP_HOST:REGISTRY_HTTP_PORT``),
or ``uvicorn connector_registry.app:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from plugboard_servicekit.app import Runtime, ServiceSpec, create_service_app
from plugboard_servicekit.client import ServiceClient

from connector_registry.api import apps, connectors, providers
from connector_registry.consumers import SUBSCRIPTIONS
from connector_registry.deps import RegistryDeps
from connector_registry.domain import catalogue
from connector_registry.secrets import SecretStore
from connector_registry.service_apps import ProviderAppService
from connector_registry.service_catalogue import CatalogueService, builtin_entries
from connector_registry.service_connectors import ConnectorService
from connector_registry.service_versions import VersionService
from connector_registry.settings import ConnectorRegistrySettings

SERVICE_NAME = "connector-registry"
TRUSTED_SERVICES = frozenset({"installation", "oauth-broker"})
"""Services that read the catalogue, connectors and provider apps for an org: installation
(provider entries for connections) and the OAuth broker (configs and apps)."""


@asynccontextmanager
async def registry_dependencies(
    runtime: Runtime[ConnectorRegistrySettings],
) -> AsyncIterator[RegistryDeps]:
    """The composition root: the vault client and the use cases, built once."""
    catalogue.builtin()
    builtin_entries()  # parse the catalogue at start-up, not on the first request
    async with ServiceClient.to(runtime, "credential-vault") as vault:
        secrets = SecretStore(vault)
        pool = runtime.pool
        connector_service = ConnectorService(pool, secrets)
        dev = runtime.settings.dev_mode
        catalogue_service = CatalogueService(pool, connector_service, dev=dev)
        yield RegistryDeps(
            settings=runtime.settings,
            pool=pool,
            secrets=secrets,
            connectors=connector_service,
            versions=VersionService(pool),
            catalogue=catalogue_service,
            apps=ProviderAppService(pool, secrets, catalogue_service),
        )


SPEC = ServiceSpec[ConnectorRegistrySettings, RegistryDeps](
    name=SERVICE_NAME,
    schema="registry",
    migrations=Path(__file__).parent / "migrations",
    settings_type=ConnectorRegistrySettings,
    dependencies=registry_dependencies,
    routers=[providers.imports, connectors.router, providers.router, apps.router],
    subscriptions=SUBSCRIPTIONS,
    trusted_services=TRUSTED_SERVICES,
)


def create_app(settings: ConnectorRegistrySettings | None = None) -> FastAPI:
    """The app (uvicorn ``--factory``); settings from the environment unless given."""
    return create_service_app(SPEC, settings or ConnectorRegistrySettings())
