"""The built-in catalogue: schema-valid, every entry sound, regenerated exactly from upstream."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from connector_registry.domain import amp, templates
from connector_registry.domain.catalogue import builtin, generated_schema, problems, schema_document
from connector_registry.domain.schemes import GrantKind, OAuth2Scheme

REFERENCE = Path(__file__).parents[5] / "shared" / "reference" / "providers.json"
PACKAGE = Path(amp.__file__).parents[1] / "catalogue"


def test_the_checked_in_schema_is_the_models_schema() -> None:
    assert schema_document() == generated_schema()


def test_the_catalogue_file_validates_against_its_schema() -> None:
    document = json.loads((PACKAGE / "providers.json").read_text())
    jsonschema.Draft202012Validator(schema_document()).validate(document)
    assert "MIT" in document["attribution"]
    assert "Onset Labs" in (PACKAGE / "NOTICE.md").read_text()


def test_it_has_all_238_providers() -> None:
    assert len(builtin()) == 238


@pytest.mark.parametrize("name", sorted(builtin()))
def test_every_entry_is_sound(name: str) -> None:
    """https URLs, template variables declared as inputs, grant type fits the URLs."""
    provider = builtin()[name]
    assert problems(provider) == []
    declared = {item.name for item in provider.inputs}
    for _field, value in provider.templated_strings():
        assert set(templates.variables(value)) <= declared
    for scheme in provider.auth_schemes:
        if isinstance(scheme, OAuth2Scheme):
            assert scheme.token_url is not None
            assert scheme.token_url.startswith("https://")
            code = scheme.grant.type == GrantKind.AUTHORIZATION_CODE
            assert (scheme.authorize_url is not None) == code


def test_known_entries_are_expressed_as_our_configs() -> None:
    salesforce = builtin()["salesforce"].auth_schemes[0]
    assert isinstance(salesforce, OAuth2Scheme)
    assert salesforce.pkce
    assert salesforce.token_response_metadata == ["instance_url", "id"]
    assert salesforce.additional_authorize_params == "prompt=login"
    atlassian = builtin()["atlassian"]
    assert "cloudId" in {item.name for item in atlassian.inputs}  # undeclared upstream
    bigquery = builtin()["bigquery"]
    assert bigquery.protocol == "bigquery"
    assert bigquery.auth_types() == ["jwt-bearer"]
    assert [s.scheme_type for s in builtin()["clariCopilot"].auth_schemes] == ["api-key"] * 2


def test_problems_catch_broken_entries() -> None:
    entry = builtin()["zendeskSupport"].model_copy(update={"inputs": []})
    assert any("workspace is not a declared input" in text for text in problems(entry))


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference is not beside the repo")
def test_the_file_is_exactly_what_the_converter_makes() -> None:
    document = amp.convert_all(json.loads(REFERENCE.read_text()))
    assert json.loads((PACKAGE / "providers.json").read_text()) == document
