"""Settings of the connector-registry service (prefix `REGISTRY_`; shared ones unprefixed)."""

from plugboard_servicekit.settings import ServiceSettings, service_settings_config


class ConnectorRegistrySettings(ServiceSettings):
    model_config = service_settings_config("REGISTRY_")

    http_port: int = 8001
