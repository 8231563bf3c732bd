"""Settings every service shares, read from the environment.

The shared infrastructure variables (database, broker, JWT key, telemetry) are
unprefixed so one set of env vars configures every service; a service's own
fields take its prefix (``VAULT_``, ``OAUTH_``, ...). pydantic-settings ignores
``env_prefix`` for fields with a ``validation_alias``, which is what keeps the
shared fields unprefixed in every subclass.
"""

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def service_settings_config(prefix: str) -> SettingsConfigDict:
    """Config for a service's settings class: its own fields read ``<prefix><NAME>``."""
    return SettingsConfigDict(
        env_prefix=prefix,
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
    )


class ServiceSettings(BaseSettings):
    """Shared settings; subclass with ``model_config = service_settings_config("VAULT_")``."""

    model_config = service_settings_config("")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias="DATABASE_URL",
        repr=False,
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    jwt_public_key: str | None = Field(default=None, validation_alias="PLUGBOARD_JWT_PUBLIC_KEY")
    jwt_public_key_file: Path | None = Field(
        default=None, validation_alias="PLUGBOARD_JWT_PUBLIC_KEY_FILE"
    )
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    kafka_session_timeout_ms: int = Field(
        default=10000, validation_alias="KAFKA_SESSION_TIMEOUT_MS"
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3000, validation_alias="KAFKA_HEARTBEAT_INTERVAL_MS"
    )
    auto_migrate: bool = Field(default=True, validation_alias="AUTO_MIGRATE")
    broker_probe_seconds: float = Field(
        default=5.0, gt=0, validation_alias="KAFKA_BROKER_PROBE_SECONDS"
    )
    """How often the broker's state is probed for /readyz and plugboard_broker_up."""
    kafka_group_prefix: str = Field(default="", validation_alias="KAFKA_GROUP_PREFIX")
    """Prefixed to the consumer group (the service name), so several deployments, or
    test stacks, can share one Kafka cluster without sharing group membership."""

    # Service-to-service calls (shared, unprefixed): this service's own key and its
    # callers' public keys live in one directory; base URLs of the other services.
    service_keys_dir: Path | None = Field(
        default=None, validation_alias="PLUGBOARD_SERVICE_KEYS_DIR"
    )
    registry_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias="PLUGBOARD_REGISTRY_URL"
    )
    vault_url: str = Field(default="http://127.0.0.1:8002", validation_alias="PLUGBOARD_VAULT_URL")
    oauth_url: str = Field(default="http://127.0.0.1:8003", validation_alias="PLUGBOARD_OAUTH_URL")
    installation_url: str = Field(
        default="http://127.0.0.1:8004", validation_alias="PLUGBOARD_INSTALLATION_URL"
    )

    # Per service, read with the subclass's prefix (VAULT_HTTP_PORT, ...).
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_body_bytes: int = 65536
    db_pool_size: int = 10

    @model_validator(mode="after")
    def _load_key_file(self) -> "ServiceSettings":
        """Read the key file once at start-up so a bad path fails fast, not per request."""
        if self.jwt_public_key is None and self.jwt_public_key_file is not None:
            try:
                self.jwt_public_key = self.jwt_public_key_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"PLUGBOARD_JWT_PUBLIC_KEY_FILE: {exc.strerror}") from exc
        return self

    @property
    def jwt_public_key_pem(self) -> str | None:
        """The verifying key as PEM; ``\\n`` escapes from a one-line env var are undone."""
        if self.jwt_public_key is None:
            return None
        return self.jwt_public_key.replace("\\n", "\n").strip() + "\n"
