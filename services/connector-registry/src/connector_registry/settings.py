"""Settings of the connector-registry service (prefix ``REGISTRY_``; shared ones unprefixed)."""

from plugboard_servicekit.settings import ServiceSettings, service_settings_config

MIB = 1024 * 1024


class ConnectorRegistrySettings(ServiceSettings):
    model_config = service_settings_config("REGISTRY_")

    http_port: int = 8001
    max_body_bytes: int = 25 * MIB
    """What servicekit's body limit lets through: the two document imports need 25 MiB."""
    small_body_bytes: int = 65536
    """The limit of every other route (``bodylimit.RouteBodyLimit``)."""
    import_max_bytes: int = 25 * MIB
    """OpenAPI and Nango documents, streamed to a spooled file up to this size."""
    dev_mode: bool = False
    """http OAuth endpoints are a warning instead of an error (local mock servers)."""
