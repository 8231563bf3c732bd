"""Settings of the oauth-broker service (env prefix `OAUTH_`; shared settings unprefixed)."""

from plugboard_servicekit.settings import ServiceSettings, service_settings_config


class OAuthBrokerSettings(ServiceSettings):
    model_config = service_settings_config("OAUTH_")

    http_port: int = 8003
    public_url: str = "http://127.0.0.1:8003"
    """Base of the redirect URI registered at providers: {public_url}/v1/oauth/callback."""
    egress_allow: str = ""
    """Hosts or host:port exempt from the SSRF rules (http and private addresses allowed)."""
    session_ttl_seconds: int = 600
    refresh_margin_seconds: int = 300
    default_token_lifetime_seconds: int = 3600
    keepalive_seconds: int = 86400
    keepalive_jitter: float = 0.1
    token_endpoint_concurrency: int = 10
    breaker_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0
    backoff_base_seconds: float = 30.0
    backoff_cap_seconds: float = 3600.0
    lease_seconds: float = 30.0
    scheduler_batch: int = 40
    """Refreshes claimed and in flight per replica. Claimed rows wait for a slot under
    the token endpoint's cap (their leases run meanwhile); a few times the cap keeps the
    cap busy while claims and vault writes are in flight. More rows are claimed once a
    quarter of the batch is free."""
    scheduler_interval_seconds: float = 1.0
    scheduler_enabled: bool = True
    provider_timeout_seconds: float = 10.0
    client_secret_cache_seconds: float = 60.0
    write_linger_seconds: float = 0.01
    """Under load, how long a vault write batch and a refresh-record batch wait to
    fill (``GroupCommit``'s linger): in a storm, fewer and fuller calls. A write with
    no other in flight goes at once; 0 turns lingering off."""
