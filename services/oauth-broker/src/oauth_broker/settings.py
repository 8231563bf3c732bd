"""Settings of the oauth-broker service (env prefix `OAUTH_`; shared settings unprefixed).

Every number of the broker's own is bounded, so a mistyped value (a zero batch, a
negative lease, a jitter of 5) stops the service at start-up naming the setting,
instead of a scheduler that never claims or a lease that is always lost.
"""

from typing import Self

from plugboard_servicekit.settings import ServiceSettings, service_settings_config
from pydantic import Field, model_validator


class OAuthBrokerSettings(ServiceSettings):
    model_config = service_settings_config("OAUTH_")

    http_port: int = Field(default=8003, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8003"
    """Base of the redirect URI registered at providers: {public_url}/v1/oauth/callback."""
    egress_allow: str = ""
    """Hosts or host:port exempt from the SSRF rules (http and private addresses allowed)."""
    session_ttl_seconds: int = Field(default=600, gt=0)
    refresh_margin_seconds: int = Field(default=300, ge=0)
    default_token_lifetime_seconds: int = Field(default=3600, gt=0)
    keepalive_seconds: int = Field(default=86400, ge=0)
    """Refresh an idle refresh token at least this often; 0: no keep-alive refresh."""
    keepalive_jitter: float = Field(default=0.1, ge=0, lt=1)
    token_endpoint_concurrency: int = Field(default=10, ge=1)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    backoff_base_seconds: float = Field(default=30.0, gt=0)
    backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    scheduler_batch: int = Field(default=40, ge=1)
    """Refreshes claimed and in flight per replica. Claimed rows wait for a slot under
    the token endpoint's cap (their leases run meanwhile); a few times the cap keeps the
    cap busy while claims and vault writes are in flight. More rows are claimed once a
    quarter of the batch is free."""
    scheduler_interval_seconds: float = Field(default=1.0, gt=0)
    scheduler_enabled: bool = True
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    client_secret_cache_seconds: float = Field(default=60.0, ge=0)
    write_linger_seconds: float = Field(default=0.01, ge=0, le=1)
    """Under load, how long a vault write batch and a refresh-record batch wait to
    fill (``GroupCommit``'s linger): in a storm, fewer and fuller calls. A write with
    no other in flight goes at once; 0 turns lingering off."""

    @model_validator(mode="after")
    def _backoff_cap_covers_base(self) -> Self:
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError(
                "OAUTH_BACKOFF_CAP_SECONDS must be at least OAUTH_BACKOFF_BASE_SECONDS"
            )
        return self
