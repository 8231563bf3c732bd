"""The connector-registry service app: its spec (schema, migrations, routes, handlers) and factory.

Its features land in later issues; until then it runs the shared runtime (outbox
relay, health, readiness, metrics) on its own schema.
"""

from pathlib import Path

from fastapi import FastAPI
from plugboard_servicekit.app import ServiceSpec, create_service_app

from connector_registry.settings import ConnectorRegistrySettings

SPEC = ServiceSpec(
    name="connector-registry",
    schema="registry",
    migrations=Path(__file__).parent / "migrations",
)


def create_app() -> FastAPI:
    """Uvicorn factory: `uvicorn --factory connector_registry.app:create_app`."""
    return create_service_app(SPEC, ConnectorRegistrySettings())  # pyright: ignore[reportCallIssue]
