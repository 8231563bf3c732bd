"""The broker's settings refuse values that would leave it silently broken."""

import pytest
from oauth_broker.settings import OAuthBrokerSettings
from pydantic import ValidationError


def test_the_defaults_are_valid(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OAUTH_SCHEDULER_BATCH", raising=False)
    settings = OAuthBrokerSettings()
    assert (settings.scheduler_batch, settings.write_linger_seconds) == (40, 0.01)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OAUTH_SCHEDULER_BATCH", "0"),
        ("OAUTH_TOKEN_ENDPOINT_CONCURRENCY", "0"),
        ("OAUTH_LEASE_SECONDS", "-1"),
        ("OAUTH_SCHEDULER_INTERVAL_SECONDS", "0"),
        ("OAUTH_PROVIDER_TIMEOUT_SECONDS", "0"),
        ("OAUTH_KEEPALIVE_JITTER", "1.5"),
        ("OAUTH_WRITE_LINGER_SECONDS", "-0.01"),
        ("OAUTH_CLIENT_SECRET_CACHE_SECONDS", "-5"),
        ("OAUTH_BREAKER_THRESHOLD", "0"),
        ("OAUTH_HTTP_PORT", "70000"),
    ],
)
def test_an_out_of_range_value_stops_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("OAUTH_").lower()):
        OAuthBrokerSettings()


def test_a_backoff_cap_below_its_base_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OAUTH_BACKOFF_BASE_SECONDS", "60")
    monkeypatch.setenv("OAUTH_BACKOFF_CAP_SECONDS", "30")
    with pytest.raises(ValidationError, match="OAUTH_BACKOFF_CAP_SECONDS"):
        OAuthBrokerSettings()
