"""Shared settings stay unprefixed; a service's own fields take its prefix."""

from pathlib import Path

import pytest
from plugboard_servicekit.auth import generate_keypair
from plugboard_servicekit.settings import ServiceSettings, service_settings_config
from pydantic import ValidationError

SHARED_ENV = (
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "PLUGBOARD_JWT_PUBLIC_KEY",
    "PLUGBOARD_JWT_PUBLIC_KEY_FILE",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "LOG_LEVEL",
    "KAFKA_SESSION_TIMEOUT_MS",
    "KAFKA_HEARTBEAT_INTERVAL_MS",
    "AUTO_MIGRATE",
    "HTTP_PORT",
    "KAFKA_BROKER_PROBE_SECONDS",
    "PLUGBOARD_SERVICE_KEYS_DIR",
    "PLUGBOARD_REGISTRY_URL",
    "PLUGBOARD_VAULT_URL",
    "PLUGBOARD_OAUTH_URL",
    "PLUGBOARD_INSTALLATION_URL",
)


class VaultSettings(ServiceSettings):
    model_config = service_settings_config("VAULT_")

    keyring_file: Path | None = None
    http_port: int = 8002


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SHARED_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"VAULT_{name}", raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch):
    settings = VaultSettings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_session_timeout_ms == 10000
    assert settings.kafka_heartbeat_interval_ms == 3000
    assert settings.log_level == "INFO"
    assert settings.otlp_endpoint is None
    assert settings.jwt_public_key_pem is None
    assert settings.auto_migrate is True
    assert settings.max_body_bytes == 65536
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8002)


def test_shared_fields_are_unprefixed_and_own_fields_prefixed(clean_env: pytest.MonkeyPatch):
    clean_env.setenv("DATABASE_URL", "postgresql://shared")
    clean_env.setenv("VAULT_DATABASE_URL", "postgresql://ignored")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    clean_env.setenv("KAFKA_SESSION_TIMEOUT_MS", "2000")
    clean_env.setenv("AUTO_MIGRATE", "false")
    clean_env.setenv("LOG_LEVEL", "debug")
    clean_env.setenv("VAULT_KEYRING_FILE", "/etc/vault/keyring.json")
    clean_env.setenv("VAULT_HTTP_PORT", "9002")
    clean_env.setenv("HTTP_PORT", "1")
    clean_env.setenv("VAULT_MAX_BODY_BYTES", "1024")
    settings = VaultSettings()
    assert settings.database_url == "postgresql://shared"
    assert settings.kafka_bootstrap_servers == "broker:9093"
    assert settings.otlp_endpoint == "http://collector:4318"
    assert settings.kafka_session_timeout_ms == 2000
    assert settings.auto_migrate is False
    assert settings.log_level == "debug"
    assert settings.keyring_file == Path("/etc/vault/keyring.json")
    assert settings.http_port == 9002
    assert settings.max_body_bytes == 1024


def test_fields_can_be_passed_by_name(clean_env: pytest.MonkeyPatch):
    settings = VaultSettings(database_url="postgresql://given", auto_migrate=False)
    assert settings.database_url == "postgresql://given"
    assert settings.auto_migrate is False


def test_database_url_is_not_in_repr(clean_env: pytest.MonkeyPatch):
    clean_env.setenv("DATABASE_URL", "postgresql://vault:hunter2@db/plugboard")
    assert "hunter2" not in repr(VaultSettings())


def test_public_key_from_env_with_escaped_newlines(clean_env: pytest.MonkeyPatch):
    _, public_pem = generate_keypair()
    clean_env.setenv("PLUGBOARD_JWT_PUBLIC_KEY", public_pem.strip().replace("\n", "\\n"))
    assert VaultSettings().jwt_public_key_pem == public_pem


def test_public_key_from_file(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    _, public_pem = generate_keypair()
    key_file = tmp_path / "jwt.pub"
    key_file.write_text(public_pem)
    clean_env.setenv("PLUGBOARD_JWT_PUBLIC_KEY_FILE", str(key_file))
    assert VaultSettings().jwt_public_key_pem == public_pem


def test_missing_key_file_fails_at_start_up(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    clean_env.setenv("PLUGBOARD_JWT_PUBLIC_KEY_FILE", str(tmp_path / "absent.pem"))
    with pytest.raises(ValidationError, match="PLUGBOARD_JWT_PUBLIC_KEY_FILE"):
        VaultSettings()


def test_invalid_value_names_the_env_variable(clean_env: pytest.MonkeyPatch):
    clean_env.setenv("KAFKA_HEARTBEAT_INTERVAL_MS", "often")
    with pytest.raises(ValidationError, match="KAFKA_HEARTBEAT_INTERVAL_MS"):
        VaultSettings()


def test_service_call_settings_are_shared(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    defaults = VaultSettings()
    assert defaults.service_keys_dir is None
    assert (defaults.registry_url, defaults.vault_url) == (
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8002",
    )
    assert (defaults.oauth_url, defaults.installation_url) == (
        "http://127.0.0.1:8003",
        "http://127.0.0.1:8004",
    )
    clean_env.setenv("PLUGBOARD_SERVICE_KEYS_DIR", str(tmp_path))
    clean_env.setenv("VAULT_PLUGBOARD_VAULT_URL", "http://ignored")
    clean_env.setenv("PLUGBOARD_VAULT_URL", "http://vault.plugboard:8002")
    clean_env.setenv("KAFKA_BROKER_PROBE_SECONDS", "0.5")
    settings = VaultSettings()
    assert settings.service_keys_dir == tmp_path
    assert settings.vault_url == "http://vault.plugboard:8002"
    assert settings.broker_probe_seconds == 0.5
