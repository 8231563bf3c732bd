"""The Nango and OpenAPI importers on real documents (tests/data) and on edge cases."""

from __future__ import annotations

import gzip
import resource
from pathlib import Path

import pytest
from connector_registry.domain import nango, openapi
from connector_registry.domain.documents import DocumentError
from connector_registry.domain.schemes import ApiKeyScheme, BasicAuthScheme, OAuth2Scheme

DATA = Path(__file__).parents[1] / "data"


def _open(name: str) -> gzip.GzipFile:
    return gzip.open(DATA / f"{name}.gz")


@pytest.fixture(scope="module")
def nango_result() -> nango.ImportResult:
    return nango.import_document(nango.load_document(_open("nango-providers.yaml")))


def test_nango_import_maps_the_supported_modes(nango_result: nango.ImportResult) -> None:
    providers = {p.name: p for p in nango_result.providers}
    assert len(providers) + len(nango_result.skipped) == 981
    assert len(providers) > 800
    salesforce = providers["salesforce"].auth_schemes[0]
    assert isinstance(salesforce, OAuth2Scheme)
    assert salesforce.token_url == "https://{{.hostname}}/services/oauth2/token"
    hostname = next(i for i in providers["salesforce"].inputs if i.name == "hostname")
    assert hostname.default == "login.salesforce.com"  # from the || fallback
    assert salesforce.token_response_metadata == ["instance_url"]
    zendesk = providers["zendesk"]
    assert zendesk.base_url == "https://{{.subdomain}}.zendesk.com"
    assert zendesk.auth_schemes[0].additional_token_params == "expires_in=1800"  # type: ignore[union-attr]
    anthropic = providers["anthropic"].auth_schemes[0]
    assert isinstance(anthropic, ApiKeyScheme)
    assert anthropic.name == "x-api-key"
    kinds = {p.auth_schemes[0].scheme_type.value for p in providers.values()}
    assert kinds == {"oauth2", "api-key", "basic-auth", "jwt-bearer", "none"}


def test_nango_unsupported_modes_are_skipped_with_reasons(
    nango_result: nango.ImportResult,
) -> None:
    reasons = {s.name: s.reason for s in nango_result.skipped}
    assert any("OAUTH1" in r for r in reasons.values())
    assert any("TBA" in r for r in reasons.values())
    assert all(reasons.values())


def test_nango_refuses_a_document_that_is_not_a_provider_map() -> None:
    with pytest.raises(DocumentError):
        nango.load_document(b"- a\n- b\n")


def _draft(name: str) -> openapi.ConnectorDraft:
    return openapi.draft(openapi.load_document(_open(name)))


def test_openapi_over_5_mb_in_bounded_memory() -> None:
    """GitHub's 13 MB description: paths are skipped while parsing, not built."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = _draft("github-api.github.com.json")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.base_url == "https://api.github.com"
    assert result.documentation_url == "https://docs.github.com/rest/"
    assert result.paths > 500
    assert grown_mb < 60  # json.loads of the same document grows RSS by about 70 MB


def test_swagger_2_oauth2_flow() -> None:
    result = _draft("slack-web-openapi-v2.json")
    assert result.version == "2.0"
    assert result.base_url == "https://slack.com/api"
    (scheme,) = result.auth_schemes
    assert isinstance(scheme, OAuth2Scheme)
    assert scheme.authorize_url == "https://slack.com/oauth/authorize"
    assert scheme.token_url == "https://slack.com/api/oauth.access"
    assert len(scheme.scopes) > 50


def test_http_basic_and_bearer_and_api_key() -> None:
    (basic,) = _draft("twilio-api-v2010.json").auth_schemes
    assert isinstance(basic, BasicAuthScheme)
    bearer, oauth = _draft("asana-oas.yaml").auth_schemes
    assert isinstance(bearer, ApiKeyScheme)
    assert bearer.value_prefix == "Bearer "
    assert isinstance(oauth, OAuth2Scheme)
    assert oauth.token_url == "https://app.asana.com/-/oauth_token"


def test_server_variables_and_relative_oauth_urls() -> None:
    result = _draft("okta-management.yaml")
    assert result.base_url == "https://{{.yourOktaDomain}}"
    assert result.connection_variables == [("yourOktaDomain", "subdomain.okta.com")]
    key, oauth = result.auth_schemes
    assert isinstance(key, ApiKeyScheme)
    assert key.in_ == "header"
    assert isinstance(oauth, OAuth2Scheme)
    assert oauth.token_url == "https://{{.yourOktaDomain}}/oauth2/v1/token"


OIDC_AND_REFS = b"""
openapi: 3.1.0
info: {title: Written for this test}
servers: [{url: "https://{region}.api.example.com/v1", variables: {region: {default: eu}}}]
externalDocs: {url: https://docs.example.com}
components:
  securitySchemes:
    oidc: {type: openIdConnect, openIdConnectUrl: https://id.example.com/.well-known/openid-configuration}
    key: {$ref: "#/components/securitySchemes/realKey"}
    realKey: {type: apiKey, name: api_key, in: query}
    broken: {$ref: "#/components/securitySchemes/nothing"}
    elsewhere: {$ref: "other.yaml#/x"}
    loop: {$ref: "#/components/securitySchemes/loop"}
    digest: {type: http, scheme: digest}
    flows:
      type: oauth2
      flows:
        implicit: {authorizationUrl: https://a.example.com, scopes: {}}
        clientCredentials: {$ref: "#/x-flows/cc"}
    tls: {type: mutualTLS}
x-flows:
  cc: {tokenUrl: /oauth/token, scopes: {read: Read}}
"""


def test_openid_connect_refs_and_unsupported_parts_become_messages() -> None:
    result = openapi.draft(openapi.load_document(OIDC_AND_REFS))
    by_id = {scheme.id: scheme for scheme in result.auth_schemes}
    oidc = by_id["oidc"]
    assert isinstance(oidc, OAuth2Scheme)
    assert oidc.discovery_url is not None
    assert isinstance(by_id["key"], ApiKeyScheme)
    cc = by_id["flows"]
    assert isinstance(cc, OAuth2Scheme)
    assert cc.token_url == "https://{{.region}}.api.example.com/oauth/token"  # RFC 3986
    assert by_id["tls"].scheme_type == "certificate"
    texts = " | ".join(m.text for m in result.messages)
    for expected in ("unresolvable $ref", "external $ref", "circular $ref", "openIdConnect",
                     "flow implicit not supported", "type not supported"):  # fmt: skip
        assert expected in texts
    assert result.documentation_url == "https://docs.example.com"


@pytest.mark.parametrize("text", [b"openapi: 4.0.0\n", b"[1, 2]", b"{not json", b"swagger: '1.2'"])
def test_documents_that_are_not_openapi_are_refused(text: bytes) -> None:
    with pytest.raises(DocumentError):
        openapi.load_document(text)
