"""Per-type data validation, certificate and jwt-bearer checks, fieldsSet, merge patch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from credential_vault.domain.data import token_metadata
from credential_vault.domain.findings import InvalidCredentialDataError
from credential_vault.domain.merge_patch import merge_patch
from credential_vault.domain.validation import validate_data
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from plugboard_contracts.enums import CredentialType


def _issues(credential_type: CredentialType, raw: Any) -> dict[str, str]:
    with pytest.raises(InvalidCredentialDataError) as caught:
        validate_data(credential_type, raw)
    return {issue.field: issue.message for issue in caught.value.issues}


@pytest.mark.parametrize("credential_type", list(CredentialType))
def test_every_sample_round_trips_through_its_model(
    credential_type: CredentialType, samples: dict[str, Any]
) -> None:
    validated = validate_data(credential_type, samples[credential_type])
    assert validated.errors == []
    assert validated.data.model_dump(mode="json", exclude_none=True) == samples[credential_type]


def test_defaults_are_filled_and_unset_optionals_left_out() -> None:
    data = validate_data(CredentialType.OAUTH2_CLIENT, {"clientId": "c", "clientSecret": "s"}).data
    assert data.plaintext() == (
        b'{"clientId":"c","clientSecret":"s","scopes":[],"additionalParams":{},"mtlsEnabled":false}'
    )


@pytest.mark.parametrize(
    ("credential_type", "raw", "field"),
    [
        (CredentialType.BASIC_AUTH, {"username": "u"}, "password"),
        (CredentialType.BASIC_AUTH, {"username": "u", "password": "p", "pin": "1"}, "pin"),
        (CredentialType.STRING, {"value": 5}, "value"),
        (CredentialType.BINARY, {"valueBase64": "not base64!"}, "valueBase64"),
        (CredentialType.OAUTH2_CLIENT, {"clientId": "c", "tokenUrl": "ftp://x"}, "tokenUrl"),
        (CredentialType.OAUTH2_CLIENT, {"clientId": "c"}, "clientSecret"),
        (CredentialType.OAUTH2_CLIENT, {"clientId": "c", "mtlsEnabled": True}, "mtlsCredentialId"),
        (CredentialType.OAUTH2_TOKEN, {"accessToken": "a", "issuedAt": "2030-01-01"}, "issuedAt"),
        (CredentialType.CUSTOM_FUNCTION, {"fields": {"a": 1}}, "fields.a"),
        (CredentialType.JWT_BEARER, {"algorithm": "HS999", "secret": "s"}, "algorithm"),
        (CredentialType.NONE, {"type": "string"}, "type"),
    ],
)
def test_bad_data_names_the_field(credential_type: CredentialType, raw: Any, field: str) -> None:
    assert field in _issues(credential_type, raw)


def test_issue_messages_never_echo_the_input(canary: str) -> None:
    issues = _issues(CredentialType.BASIC_AUTH, {"username": canary, "password": [canary]})
    assert canary not in repr(issues)


def test_repr_of_data_hides_values(samples: dict[str, Any], canary: str) -> None:
    data = validate_data(CredentialType.BASIC_AUTH, samples[CredentialType.BASIC_AUTH]).data
    assert canary not in repr(data)
    assert canary not in str(data)


def test_fields_set_lists_names_only(samples: dict[str, Any]) -> None:
    basic = validate_data(CredentialType.BASIC_AUTH, samples[CredentialType.BASIC_AUTH]).data
    custom = validate_data(CredentialType.CUSTOM_FUNCTION, samples[CredentialType.CUSTOM_FUNCTION])
    assert basic.fields_set() == ["password", "username"]
    assert custom.data.fields_set() == ["fields.apiKey", "fields.tenant"]


def test_token_metadata_comes_from_oauth2_token_only(samples: dict[str, Any]) -> None:
    token = validate_data(CredentialType.OAUTH2_TOKEN, samples[CredentialType.OAUTH2_TOKEN]).data
    basic = validate_data(CredentialType.BASIC_AUTH, samples[CredentialType.BASIC_AUTH]).data
    assert token_metadata(token) == (datetime(2031, 1, 1, tzinfo=UTC), True)
    assert token_metadata(basic) == (None, False)


PemOf = Callable[[Any], str]


class TestCertificate:
    def test_bad_pem_names_each_field(self) -> None:
        issues = _issues(CredentialType.CERTIFICATE, {"certificate": "x", "key": "y", "ca": "z"})
        assert set(issues) == {"certificate", "key", "ca"}

    def test_key_must_match_certificate(
        self, ec_key: ec.EllipticCurvePrivateKey, certificate: Callable[..., str], pem: PemOf
    ) -> None:
        other = ec.generate_private_key(ec.SECP256R1())
        raw = {"certificate": certificate(ec_key), "key": pem(other)}
        assert _issues(CredentialType.CERTIFICATE, raw) == {
            "key": "does not match the certificate's public key"
        }

    def test_expired_or_foreign_ca_is_stored_with_errors(
        self, ec_key: ec.EllipticCurvePrivateKey, certificate: Callable[..., str], pem: PemOf
    ) -> None:
        expired = certificate(ec_key, not_after=datetime.now(UTC) - timedelta(days=1))
        unrelated_ca = certificate(ec.generate_private_key(ec.SECP256R1()), subject="ca")
        raw = {"certificate": expired, "key": pem(ec_key), "ca": unrelated_ca}
        assert validate_data(CredentialType.CERTIFICATE, raw).errors == [
            "certificate has expired",
            "certificate was not issued by any certificate in ca",
        ]


class TestJwtBearer:
    def test_hmac_needs_a_secret_and_no_key(self, rsa_key: rsa.RSAPrivateKey, pem: PemOf) -> None:
        raw = {"algorithm": "HS256", "privateKey": pem(rsa_key)}
        assert set(_issues(CredentialType.JWT_BEARER, raw)) == {"secret", "privateKey"}

    def test_short_hmac_secret_is_an_error_not_a_rejection(self) -> None:
        raw = {"algorithm": "HS512", "secret": "short"}
        assert validate_data(CredentialType.JWT_BEARER, raw).errors == [
            "secret is shorter than 64 bytes"
        ]

    @pytest.mark.parametrize(
        ("algorithm", "key_fixture", "ok"),
        [
            ("RS384", "rsa_key", True),
            ("RS256", "ec_key", False),
            ("ES256", "ec_key", True),
            ("ES256", "ed_key", False),
            ("EdDSA", "ed_key", True),
            ("EdDSA", "rsa_key", False),
        ],
    )
    def test_key_kind_must_suit_the_algorithm(
        self,
        algorithm: str,
        key_fixture: str,
        ok: bool,
        request: pytest.FixtureRequest,
        pem: PemOf,
    ) -> None:
        raw = {"algorithm": algorithm, "privateKey": pem(request.getfixturevalue(key_fixture))}
        if ok:
            assert validate_data(CredentialType.JWT_BEARER, raw).errors == []
        else:
            assert "privateKey" in _issues(CredentialType.JWT_BEARER, raw)

    def test_p384_key_is_not_es256(self, pem: PemOf) -> None:
        key = ec.generate_private_key(ec.SECP384R1())
        issues = _issues(CredentialType.JWT_BEARER, {"algorithm": "ES256", "privateKey": pem(key)})
        assert issues == {"privateKey": "ES256 needs an EC P-256 key"}


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # the examples of RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected
