"""The broker's settings refuse values that would leave it silently broken, and take
every value at the edge of what works."""

import os

import pytest
from oauth_broker.settings import OAuthBrokerSettings
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient ``OAUTH_*`` variable (read case-insensitively) or key file path."""
    for name in list(os.environ):
        if name.upper().startswith("OAUTH_") or name.upper() == "PLUGBOARD_JWT_PUBLIC_KEY_FILE":
            monkeypatch.delenv(name)


def test_the_defaults_are_valid():
    settings = OAuthBrokerSettings()
    assert (settings.scheduler_batch, settings.write_linger_seconds) == (40, 0.01)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OAUTH_HTTP_PORT", "-1"),
        ("OAUTH_HTTP_PORT", "70000"),
        ("OAUTH_SESSION_TTL_SECONDS", "0"),
        ("OAUTH_REFRESH_MARGIN_SECONDS", "-1"),
        ("OAUTH_DEFAULT_TOKEN_LIFETIME_SECONDS", "0"),
        ("OAUTH_KEEPALIVE_SECONDS", "-1"),
        ("OAUTH_KEEPALIVE_JITTER", "-0.1"),
        ("OAUTH_KEEPALIVE_JITTER", "1"),
        ("OAUTH_TOKEN_ENDPOINT_CONCURRENCY", "0"),
        ("OAUTH_BREAKER_THRESHOLD", "0"),
        ("OAUTH_BREAKER_COOLDOWN_SECONDS", "0"),
        ("OAUTH_BACKOFF_BASE_SECONDS", "0"),
        ("OAUTH_BACKOFF_CAP_SECONDS", "0"),
        ("OAUTH_LEASE_SECONDS", "-1"),
        ("OAUTH_SCHEDULER_BATCH", "0"),
        ("OAUTH_SCHEDULER_INTERVAL_SECONDS", "0"),
        ("OAUTH_PROVIDER_TIMEOUT_SECONDS", "0"),
        ("OAUTH_CLIENT_SECRET_CACHE_SECONDS", "-5"),
        ("OAUTH_WRITE_LINGER_SECONDS", "-0.01"),
        ("OAUTH_WRITE_LINGER_SECONDS", "1.5"),
    ],
)
def test_an_out_of_range_value_stops_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("OAUTH_").lower()):
        OAuthBrokerSettings()


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("OAUTH_HTTP_PORT", "0", "http_port"),
        ("OAUTH_REFRESH_MARGIN_SECONDS", "0", "refresh_margin_seconds"),
        ("OAUTH_KEEPALIVE_SECONDS", "0", "keepalive_seconds"),
        ("OAUTH_KEEPALIVE_JITTER", "0", "keepalive_jitter"),
        ("OAUTH_CLIENT_SECRET_CACHE_SECONDS", "0", "client_secret_cache_seconds"),
        ("OAUTH_WRITE_LINGER_SECONDS", "0", "write_linger_seconds"),
        ("OAUTH_WRITE_LINGER_SECONDS", "1", "write_linger_seconds"),
        ("OAUTH_SCHEDULER_BATCH", "1", "scheduler_batch"),
        ("OAUTH_LEASE_SECONDS", "0.3", "lease_seconds"),
    ],
)
def test_a_value_at_the_edge_of_what_works_is_taken(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
):
    monkeypatch.setenv(variable, value)
    assert getattr(OAuthBrokerSettings(), field) == float(value)


def test_a_backoff_cap_equal_to_its_base_is_taken_and_one_below_is_refused(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("OAUTH_BACKOFF_BASE_SECONDS", "60")
    monkeypatch.setenv("OAUTH_BACKOFF_CAP_SECONDS", "60")
    assert OAuthBrokerSettings().backoff_cap_seconds == 60
    monkeypatch.setenv("OAUTH_BACKOFF_CAP_SECONDS", "30")
    with pytest.raises(ValidationError, match="OAUTH_BACKOFF_CAP_SECONDS"):
        OAuthBrokerSettings()
