"""credential-vault settings: the shared ones plus ``VAULT_*``."""

from __future__ import annotations

from pathlib import Path

from plugboard_servicekit.settings import ServiceSettings, service_settings_config
from pydantic import Field, SecretStr


class VaultSettings(ServiceSettings):
    """``VAULT_KEYRING_FILE`` (preferred: rotatable without restart) or ``VAULT_KEYRING`` (JSON)."""

    model_config = service_settings_config("VAULT_")

    keyring_file: Path | None = None
    keyring: SecretStr | None = None
    keyring_reload_seconds: float = Field(default=5.0, gt=0)
    http_port: int = 8002
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    sweep_batch_size: int = Field(default=5000, ge=1, le=50_000)
    sweep_concurrency: int = Field(default=2, ge=1, le=8)
    data_key_cache_size: int = Field(default=10_000, ge=1)
    data_key_max_encryptions: int = Field(default=2**30, ge=1, le=2**32)
    """Seals per data key before the org's next one is minted (NIST: 2^32 random nonces)."""
    data_key_max_age_days: float | None = Field(default=90.0, gt=0)
    """Age after which the org's next write mints a new data key; unset: no age limit."""
    revocation_handoff_seconds: float = Field(default=900.0, gt=0, le=86_400)
    """How long a deleted oauth2-token's sealed data waits for the broker's revocation
    (``:take-revocation``) before the purge destroys it."""
    revocation_purge_interval_seconds: float = Field(default=30.0, gt=0)
    reveal_audit_durable: bool = False
    """Whether a reveal waits for its audit row's WAL flush before answering. Off (the
    default), the row is written by the reveal's own statement and commits asynchronously:
    a PostgreSQL crash can lose the last ~0.6 s of reveal rows (never a credential write,
    an event or a refusal row); a reveal then costs about a third less CPU."""
