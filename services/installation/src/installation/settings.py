"""Settings of the installation service (``INSTALLATION_*``; shared settings unprefixed)."""

from __future__ import annotations

from pathlib import Path

from plugboard_servicekit.settings import ServiceSettings, service_settings_config
from pydantic import Field, SecretStr, model_validator


class InstallationSettings(ServiceSettings):
    """``INSTALLATION_TOKEN_SIGNING_KEY_FILE``: the platform's Ed25519 private key (PEM),
    the pair of ``PLUGBOARD_JWT_PUBLIC_KEY``; without it ``POST /v1/auth/token`` is 503."""

    model_config = service_settings_config("INSTALLATION_")

    http_port: int = 8004
    token_signing_key: SecretStr | None = None
    token_signing_key_file: Path | None = None
    token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    """Also bounds how long every service remembers a revoked key (``api_key.revoked``'s
    ``notAfter``): none of the key's tokens can be valid later than that."""

    @model_validator(mode="after")
    def _read_signing_key(self) -> InstallationSettings:
        """Read the key file once at start-up: a bad path fails fast, not per request."""
        if self.token_signing_key is None and self.token_signing_key_file is not None:
            try:
                text = self.token_signing_key_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"INSTALLATION_TOKEN_SIGNING_KEY_FILE: {exc.strerror}") from exc
            self.token_signing_key = SecretStr(text)
        return self
