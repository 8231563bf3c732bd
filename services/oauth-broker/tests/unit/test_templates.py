"""Provider URL templates filled from a session's context (pure)."""

from __future__ import annotations

import pytest
from oauth_broker.domain.templates import TemplateInputError, inputs_of, needed, render
from plugboard_contracts.enums import GrantType
from plugboard_contracts.payloads.registry import OAuth2Settings

ZENDESK = OAuth2Settings(
    grant_type=GrantType.AUTHORIZATION_CODE,
    authorize_url="https://{{.subdomain}}.zendesk.com/oauth/authorizations/new",
    token_url="https://{{ .subdomain }}.zendesk.com/oauth/tokens",
    revocation_url="https://{{.subdomain}}.zendesk.com/oauth/revoke",
    client_id="c",
)


def test_every_templated_url_is_filled() -> None:
    filled = render(ZENDESK, {"subdomain": "acme"})
    assert filled.authorize_url == "https://acme.zendesk.com/oauth/authorizations/new"
    assert filled.token_url == "https://acme.zendesk.com/oauth/tokens"
    assert filled.revocation_url == "https://acme.zendesk.com/oauth/revoke"
    assert needed(filled) == set()


def test_settings_without_templates_come_back_unchanged() -> None:
    plain = ZENDESK.model_copy(update={"authorize_url": "https://a.example/authorize",
                                       "token_url": "https://a.example/token",
                                       "revocation_url": None})  # fmt: skip
    assert render(plain, {}) is plain


@pytest.mark.parametrize(
    "value",
    ["acme.evil.example/x", "acme?x=1", "user@evil.example", "a b", "", "-acme", "acme#"],
)
def test_a_value_can_name_a_host_never_add_a_path_query_or_credentials(value: str) -> None:
    with pytest.raises(TemplateInputError) as refused:
        render(ZENDESK, {"subdomain": value})
    assert list(refused.value.fields) == ["subdomain"]


def test_missing_inputs_are_named() -> None:
    with pytest.raises(TemplateInputError) as refused:
        render(ZENDESK, {"workspace": "acme"})
    assert refused.value.fields == {"subdomain": "required by the provider's URLs"}


def test_inputs_come_from_metadata_and_the_workspace_ref() -> None:
    context = {"providerMetadata": {"subdomain": "acme", "n": 1}, "providerWorkspaceRef": "w1"}
    assert inputs_of(context) == {"subdomain": "acme", "workspace": "w1"}
    both = {"providerMetadata": {"workspace": "meta"}, "providerWorkspaceRef": "ref"}
    assert inputs_of(both) == {"workspace": "meta"}
    assert inputs_of({}) == {}
