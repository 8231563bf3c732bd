"""Settings of the installation service (env prefix `INSTALLATION_`; shared settings unprefixed)."""

from plugboard_servicekit.settings import ServiceSettings, service_settings_config


class InstallationSettings(ServiceSettings):
    model_config = service_settings_config("INSTALLATION_")

    http_port: int = 8004
