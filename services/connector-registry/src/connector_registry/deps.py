"""The registry's typed dependencies, built once by ``app.registry_dependencies``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from connector_registry.secrets import SecretStore
from connector_registry.settings import ConnectorRegistrySettings

if TYPE_CHECKING:
    from connector_registry.service_apps import ProviderAppService
    from connector_registry.service_catalogue import CatalogueService
    from connector_registry.service_connectors import ConnectorService
    from connector_registry.service_versions import VersionService


@dataclass(frozen=True)
class RegistryDeps:
    settings: ConnectorRegistrySettings
    pool: asyncpg.Pool
    secrets: SecretStore
    connectors: ConnectorService
    versions: VersionService
    catalogue: CatalogueService
    apps: ProviderAppService
