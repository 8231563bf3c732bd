"""Auth scheme configs: every schemeType parses and round-trips, bad input names its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from connector_registry.domain.assess import Context, assess
from connector_registry.domain.messages import Severity
from connector_registry.domain.schemes import OAuth2Scheme, parse_scheme, stored_form
from connector_registry.domain.urlparams import RESERVED_TOKEN, UrlParamsError, parse_params
from pydantic import ValidationError

EVERY_SCHEME: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "every-scheme.json").read_text()
)


@pytest.mark.parametrize("data", EVERY_SCHEME, ids=lambda d: d["schemeType"])
def test_every_scheme_type_round_trips(data: dict[str, Any]) -> None:
    scheme = parse_scheme(data)
    stored = stored_form(scheme)
    assert parse_scheme(stored) == scheme
    for key, value in data.items():
        assert stored[key] == value


def test_client_secret_is_write_only() -> None:
    scheme = parse_scheme(
        {"schemeType": "oauth2", "grant": {"clientId": "a", "clientSecret": "s3cr3t-canary"}}
    )
    assert isinstance(scheme, OAuth2Scheme)
    assert scheme.grant.client_secret is not None
    assert "s3cr3t-canary" not in repr(scheme)
    assert "s3cr3t-canary" not in str(stored_form(scheme))
    assert "s3cr3t-canary" not in scheme.model_dump_json()


def test_validation_messages_on_input_are_ignored() -> None:
    scheme = parse_scheme(
        {"schemeType": "none", "validationMessages": [{"text": "x", "severity": "error"}]}
    )
    assert scheme.validation_messages == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"schemeType": "kerberos"}, "kerberos"),
        ({"schemeType": "api-key", "name": "k", "in": "body"}, "in"),
        ({"schemeType": "oauth2", "tokenUrl": "ftp://x"}, "tokenUrl"),
        ({"schemeType": "oauth2", "tokenUrl": "https://{{ .x }"}, "tokenUrl"),
        ({"schemeType": "oauth2", "additionalAuthorizeParams": "a=%zz"}, "Authorize"),
        ({"schemeType": "oauth2", "additionalTokenParams": "grant_type=x"}, "Token"),
        ({"schemeType": "oauth2", "grant": {"type": "implicit"}}, "type"),
        ({"schemeType": "hmac", "name": "s", "in": "header", "inputs": ["body", "body"]}, "inputs"),
        ({"schemeType": "basic-auth", "password": "x"}, "password"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_scheme(data)
    assert field in str(caught.value.errors()[0]["loc"]) or field in str(caught.value)


@pytest.mark.parametrize("text", ["a", "=b", "a=1&b", "a=%2", "a=b c", "a=b#c", "a=\x00"])
def test_malformed_url_encoded_params_are_refused(text: str) -> None:
    with pytest.raises(UrlParamsError):
        parse_params(text)


def test_url_encoded_params_parse_in_order() -> None:
    assert parse_params("b=2&a=%20x&c=") == [("b", "2"), ("a", " x"), ("c", "")]
    with pytest.raises(UrlParamsError, match="grant_type"):
        parse_params("grant_type=password", reserved=RESERVED_TOKEN)


def _texts(data: dict[str, Any], context: Context = Context()) -> dict[str, Severity]:
    return {m.text: m.severity for m in assess(parse_scheme(data), context)}


def test_messages_follow_the_rules() -> None:
    found = _texts({"schemeType": "oauth2", "tokenUrl": "http://x.test/t",
                    "authorizeUrl": "https://x.test/a", "grant": {"type": "password"}})  # fmt: skip
    assert found["tokenUrl must be https"] == Severity.ERROR
    assert found["the password grant is deprecated by RFC 9700"] == Severity.WARNING
    assert found["no defaultScopes: the provider decides what is granted"] == Severity.INFO
    assert found["authorizeUrl is unused by the password grant"] == Severity.WARNING
    dev = _texts({"schemeType": "oauth2", "tokenUrl": "http://x.test/t"}, Context(dev=True))
    assert dev["tokenUrl is not https (accepted in dev mode only)"] == Severity.WARNING
    assert "the authorization_code grant needs authorizeUrl" in dev


def test_mtls_without_a_credential_links_the_certificate_config() -> None:
    data = {"schemeType": "oauth2", "tokenUrl": "https://x.test/t", "mtlsEnabled": True}
    assert _texts(data)["mtlsEnabled needs mtlsCredentialId or a certificate config"] == "error"
    linked = _texts(data, Context(has_certificate_config=True))
    assert "mtlsCredentialId linked from the certificate config" in linked


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_text_postgres_cannot_store_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="NUL characters or lone surrogates"):
        parse_scheme({"schemeType": "api-key", "name": text, "in": "header"})
