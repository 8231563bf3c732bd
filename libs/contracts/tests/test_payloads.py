import re
from typing import Any

import pytest
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import ConnectionCreated, CredentialDeleted
from plugboard_contracts.topics import CATALOGUE
from pydantic import ValidationError

SECRET_NAME = re.compile(
    r"pass(word|phrase)|secret|token|api_?key|private|signature|pem|(^|[a-z_])key$|^(data|value)$",
    re.IGNORECASE,
)
ALLOWED = {  # metadata about tokens and secrets (where, how, which id), not secrets
    "hasRefreshToken",
    "accessTokenExpiresAt",
    "has_refresh_token",
    "access_token_expires_at",
    "tokenUrl",
    "tokenEndpointAuthMethod",
    "additionalTokenParams",
    "tokenResponseMetadata",
    "clientSecretCredentialId",
    "client_secret_credential_id",
}


def _property_names(schema: Any) -> set[str]:
    """Every property name anywhere in a JSON Schema (nested models included)."""
    if isinstance(schema, list):
        return set().union(*(_property_names(item) for item in schema))
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    return names.union(*(_property_names(value) for value in schema.values()))


def test_no_payload_field_looks_like_a_secret() -> None:
    for spec in CATALOGUE.values():
        names = _property_names(spec.payload.model_json_schema(by_alias=True))
        names |= set(spec.payload.model_fields)
        suspicious = {name for name in names - ALLOWED if SECRET_NAME.search(name)}
        assert not suspicious, f"{spec.type}: {sorted(suspicious)}"


def test_the_secret_name_check_would_catch_secrets() -> None:
    for name in ("clientSecret", "password", "refreshToken", "apiKey", "privateKey", "data"):
        assert SECRET_NAME.search(name), name


def test_payloads_speak_camel_case_and_accept_both_spellings() -> None:
    credential_id = uuid7()
    by_alias = ConnectionCreated.model_validate(
        {"organisationId": "o", "connectionId": str(uuid7()), "name": "n", "version": 1,
         "credentialIds": [str(credential_id)]}
    )  # fmt: skip
    by_name = ConnectionCreated(
        organisation_id="o", connection_id=by_alias.connection_id, name="n", version=1,
        credential_ids=[credential_id], occurred_at=by_alias.occurred_at,
    )  # fmt: skip
    assert by_alias == by_name
    assert set(by_name.model_dump(mode="json")) >= {"connectionId", "credentialIds", "occurredAt"}


def test_readers_ignore_unknown_fields_and_producers_cannot_send_them() -> None:
    """Tolerant reader: an event from a newer producer (extra field) still parses; and
    what a model does not declare never reaches the wire."""
    parsed = ConnectionCreated.model_validate(
        {"organisationId": "o", "connectionId": str(uuid7()), "name": "n", "version": 1,
         "addedLater": {"nested": True}}
    )  # fmt: skip
    assert parsed.name == "n"
    assert "addedLater" not in parsed.model_dump_json()
    built = ConnectionCreated.model_validate(
        {"organisation_id": "o", "connection_id": uuid7(), "name": "n", "version": 1,
         "secret": "x"}
    )  # fmt: skip
    assert "secret" not in built.model_dump_json()


def test_payloads_still_validate_declared_fields() -> None:
    with pytest.raises(ValidationError):
        ConnectionCreated.model_validate(
            {"organisationId": "o", "connectionId": "not-a-uuid", "name": "n", "version": 1}
        )
    with pytest.raises(ValidationError):
        ConnectionCreated.model_validate(
            {"organisationId": "o", "connectionId": str(uuid7()), "name": "n", "version": 0}
        )


def test_credential_deleted_cannot_claim_expiry() -> None:
    with pytest.raises(ValidationError):
        CredentialDeleted.model_validate(
            {"organisationId": "o", "credentialId": str(uuid7()), "type": "string", "name": "n",
             "version": 1, "reason": "expired"}
        )  # fmt: skip
