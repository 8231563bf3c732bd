"""Base URLs of the platform services come from the shared PLUGBOARD_<X>_URL settings."""

import pytest
from plugboard_servicekit.client import service_url
from plugboard_servicekit.settings import ServiceSettings


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("connector-registry", "PLUGBOARD_REGISTRY_URL"),
        ("credential-vault", "PLUGBOARD_VAULT_URL"),
        ("oauth-broker", "PLUGBOARD_OAUTH_URL"),
        ("installation", "PLUGBOARD_INSTALLATION_URL"),
    ],
)
def test_each_service_url_has_its_variable(
    service: str, variable: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(variable, f"http://{service}.internal:80")
    assert service_url(ServiceSettings(), service) == f"http://{service}.internal:80"


def test_unknown_service_is_refused():
    with pytest.raises(ValueError, match="unknown service"):
        service_url(ServiceSettings(), "nobody")
