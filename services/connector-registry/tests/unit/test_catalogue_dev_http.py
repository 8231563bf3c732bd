"""Dev mode lets an org's catalogue entry name http endpoints (a local provider or mock
server); outside dev mode, and for every built-in entry, they must be https."""

from __future__ import annotations

from connector_registry.domain import nango
from connector_registry.domain.catalogue import PROVIDER_ADAPTER, builtin, problems

LOCAL = "http://127.0.0.1:8080"
ENTRY = {
    "name": "local-crm",
    "displayName": "Local CRM",
    "baseUrl": "https://crm.example/api",
    "authSchemes": [
        {
            "id": "oauth2",
            "schemeType": "oauth2",
            "authorizeUrl": f"{LOCAL}/authorize",
            "tokenUrl": f"{LOCAL}/token",
        }
    ],
}
NANGO = {
    "local-crm": {
        "auth_mode": "OAUTH2",
        "authorization_url": "http://${connectionConfig.host}/authorize",
        "token_url": "http://${connectionConfig.host}/token",
        "proxy": {"base_url": "https://crm.example/api"},
    }
}


def test_http_endpoints_are_refused_outside_dev_mode_only() -> None:
    provider = PROVIDER_ADAPTER.validate_python(ENTRY)
    assert problems(provider) == [
        "authSchemes[0].authorizeUrl: must be https",
        "authSchemes[0].tokenUrl: must be https",
    ]
    assert problems(provider, allow_http=True) == []


def test_nango_import_skips_http_entries_outside_dev_mode() -> None:
    strict = nango.import_document(NANGO)
    assert [s.reason for s in strict.skipped] == ["authSchemes[0].authorizeUrl: must be https"]
    dev = nango.import_document(NANGO, allow_http=True)
    [provider] = dev.providers
    assert (
        provider.auth_schemes[0].model_dump(by_alias=True)["tokenUrl"] == "http://{{.host}}/token"
    )


def test_builtin_entries_stay_https() -> None:
    assert all(not problems(provider) for provider in builtin().values())
