"""Settings of the oauth-broker service (env prefix `OAUTH_`; shared settings unprefixed)."""

from plugboard_servicekit.settings import ServiceSettings, service_settings_config


class OAuthBrokerSettings(ServiceSettings):
    model_config = service_settings_config("OAUTH_")

    http_port: int = 8003
