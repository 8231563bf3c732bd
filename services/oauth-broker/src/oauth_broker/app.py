"""The oauth-broker service: its spec and its uvicorn factory (`oauth_broker.app:create_app`).

Its features land in later issues; until then it runs the shared runtime (outbox
relay, health, readiness, metrics) on its own schema.
"""

from pathlib import Path

from plugboard_servicekit.app import ServiceSpec, runtime_dependencies, service_app_factory

from oauth_broker.settings import OAuthBrokerSettings

SPEC = ServiceSpec(
    name="oauth-broker",
    schema="oauth",
    migrations=Path(__file__).parent / "migrations",
    settings_type=OAuthBrokerSettings,
    dependencies=runtime_dependencies,
)
create_app = service_app_factory(SPEC)
