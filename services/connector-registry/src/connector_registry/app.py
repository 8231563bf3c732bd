"""The connector-registry service: its spec and its uvicorn factory.

Its features land in later issues; until then it runs the shared runtime (outbox
relay, health, readiness, metrics) on its own schema.
"""

from pathlib import Path

from plugboard_servicekit.app import ServiceSpec, runtime_dependencies, service_app_factory

from connector_registry.settings import ConnectorRegistrySettings

SPEC = ServiceSpec(
    name="connector-registry",
    schema="registry",
    migrations=Path(__file__).parent / "migrations",
    settings_type=ConnectorRegistrySettings,
    dependencies=runtime_dependencies,
)
create_app = service_app_factory(SPEC)
