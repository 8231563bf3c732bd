"""The one table of Plugboard services: name, package, schema (= role), port, env prefix.

Everything that starts, migrates or deploys services reads it from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.routing import APIRoute

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant
    from plugboard_servicekit.app import ServiceSpec

DEFAULT_PORT_BASE = 8000


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    package: str
    schema: str
    port: int
    env_prefix: str

    @property
    def url_env(self) -> str:
        """The shared setting that names its base URL for callers: PLUGBOARD_VAULT_URL."""
        return f"PLUGBOARD_{self.env_prefix.rstrip('_')}_URL"

    @property
    def role(self) -> str:
        """Each service logs in as a role named like the schema it owns."""
        return self.schema

    @property
    def command(self) -> list[str]:
        """How a deployment starts it: `python -m <package>`, bound by its HTTP settings."""
        return ["python", "-m", self.package]

    def port_for(self, port_base: int) -> int:
        """The port when the whole stack is shifted to another base (8000 by default)."""
        return self.port - DEFAULT_PORT_BASE + port_base

    def spec(self) -> ServiceSpec[Any, Any]:
        """The service's `ServiceSpec` (imported on demand: it pulls in the whole app)."""
        return importlib.import_module(f"{self.package}.app").SPEC


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry("connector-registry", "connector_registry", "registry", 8001, "REGISTRY_"),
    ServiceEntry("credential-vault", "credential_vault", "vault", 8002, "VAULT_"),
    ServiceEntry("oauth-broker", "oauth_broker", "oauth", 8003, "OAUTH_"),
    ServiceEntry("installation", "installation", "installation", 8004, "INSTALLATION_"),
)


def select_services(name: str | None) -> tuple[ServiceEntry, ...]:
    """All services, or the one called `name` (ValueError naming the valid ones)."""
    if name is None:
        return SERVICES
    for entry in SERVICES:
        if name in (entry.name, entry.package):
            return (entry,)
    valid = ", ".join(entry.name for entry in SERVICES)
    raise ValueError(f"unknown service {name!r}; one of: {valid}")


def _scopes_of(dependant: Dependant) -> frozenset[str]:
    """The scopes an `authorize(...)` dependency requires."""
    from plugboard_servicekit.http import Authorize

    call = dependant.call
    return call.scopes if isinstance(call, Authorize) else frozenset()


def required_scopes(specs: Iterable[ServiceSpec[Any, Any]]) -> list[str]:
    """Every scope the services' routes require, read from their dependencies, so the
    dev token can carry them all (tokens hold exact scope names, no wildcards)."""
    found: set[str] = set()
    pending = [
        route.dependant
        for spec in specs
        for router in spec.routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    while pending:
        dependant = pending.pop()
        pending.extend(dependant.dependencies)
        found |= _scopes_of(dependant)
    return sorted(found)
