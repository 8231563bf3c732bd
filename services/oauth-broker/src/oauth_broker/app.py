"""The oauth-broker service app: its spec (schema, migrations, routes, handlers) and factory.

Its features land in later issues; until then it runs the shared runtime (outbox
relay, health, readiness, metrics) on its own schema.
"""

from pathlib import Path

from fastapi import FastAPI
from plugboard_servicekit.app import ServiceSpec, create_service_app

from oauth_broker.settings import OAuthBrokerSettings

SPEC = ServiceSpec(
    name="oauth-broker",
    schema="oauth",
    migrations=Path(__file__).parent / "migrations",
)


def create_app() -> FastAPI:
    """Uvicorn factory: `uvicorn --factory oauth_broker.app:create_app`."""
    return create_service_app(SPEC, OAuthBrokerSettings())  # pyright: ignore[reportCallIssue]
