"""The installation service's deps object, built once by ``app.installation_dependencies``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from installation.remote import Remote
from installation.service_connections import ConnectionService
from installation.service_installations import InstallationService
from installation.service_integrations import IntegrationService
from installation.service_projects import ProjectService
from installation.settings import InstallationSettings


@dataclass(frozen=True)
class InstallationDeps:
    settings: InstallationSettings
    pool: asyncpg.Pool
    remote: Remote
    projects: ProjectService
    integrations: IntegrationService
    connections: ConnectionService
    installations: InstallationService
    jwks: dict[str, Any]
