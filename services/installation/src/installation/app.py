"""The installation service app: its spec (schema, migrations, routes, handlers) and factory.

Its features land in later issues; until then it runs the shared runtime (outbox
relay, health, readiness, metrics) on its own schema.
"""

from pathlib import Path

from fastapi import FastAPI
from plugboard_servicekit.app import ServiceSpec, create_service_app

from installation.settings import InstallationSettings

SPEC = ServiceSpec(
    name="installation",
    schema="installation",
    migrations=Path(__file__).parent / "migrations",
)


def create_app() -> FastAPI:
    """Uvicorn factory: `uvicorn --factory installation.app:create_app`."""
    return create_service_app(SPEC, InstallationSettings())  # pyright: ignore[reportCallIssue]
