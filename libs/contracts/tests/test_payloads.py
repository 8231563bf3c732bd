import json
import re
from typing import Any

import pytest
from plugboard_contracts import new_event, parse_event
from plugboard_contracts.enums import GrantType
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import (
    AuthSchemeConfigUpserted,
    ConnectionCreated,
    CredentialDeleted,
)
from plugboard_contracts.payloads.registry import OAuth2Settings
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


def _connection(**extra: Any) -> dict[str, Any]:
    return {"organisation_id": "o", "connection_id": uuid7(), "name": "n", "version": 1, **extra}


def _upserted(oauth2: Any) -> dict[str, Any]:
    return {"organisation_id": "o", "version": 1, "connector_id": uuid7(),
            "auth_scheme_config_id": "c", "scheme_type": "oauth2", "oauth2": oauth2}  # fmt: skip


def _settings(**extra: Any) -> dict[str, Any]:
    return {"grant_type": GrantType.PASSWORD, "token_url": "https://t", **extra}


def test_readers_ignore_unknown_fields() -> None:
    """Tolerant reader: an event from a newer producer (extra fields, nested ones too)
    still parses, from Python and from JSON, and the extras never reach the wire again."""
    document = {"organisationId": "o", "connectionId": str(uuid7()), "name": "n", "version": 1,
                "occurredAt": "2030-01-01T00:00:00Z", "addedLater": {"nested": True}}  # fmt: skip
    parsed = ConnectionCreated.model_validate(document)
    assert parsed == ConnectionCreated.model_validate_json(json.dumps(document))
    assert parsed.name == "n"
    assert "addedLater" not in parsed.model_dump_json()
    oauth2 = {"grantType": "client_credentials", "tokenUrl": "https://t", "addedLater": 1}
    upserted = AuthSchemeConfigUpserted.model_validate(_upserted(oauth2))
    assert upserted.oauth2 is not None
    assert upserted.oauth2.token_url == "https://t"


@pytest.mark.parametrize(
    ("build", "location"),
    [
        (lambda: ConnectionCreated(**_connection(secret="x")), ("secret",)),
        (lambda: ConnectionCreated(**_connection(credentialId=uuid7())), ("credentialId",)),
        (
            lambda: AuthSchemeConfigUpserted(**_upserted(_settings(secret="x"))),
            ("oauth2", "secret"),
        ),
        (lambda: OAuth2Settings(**_settings(pwd="x")), ("pwd",)),
        (
            lambda: ConnectionCreated(**_connection()).model_copy(update={"secret": "x"}),
            ("secret",),
        ),
    ],
    ids=["unknown-keyword", "typo", "nested-dict", "nested-model", "model-copy"],
)
def test_producers_cannot_send_unknown_fields(build: Any, location: tuple[str, ...]) -> None:
    """Building by keyword (what producers do, often ``Model(**row)``) refuses what the
    model does not declare instead of dropping it silently, and names the field."""
    with pytest.raises(ValidationError) as caught:
        build()
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("extra_forbidden", location)]


def test_model_copy_validates_and_accepts_both_spellings() -> None:
    original = ConnectionCreated(**_connection())
    connection_id = uuid7()
    copied = original.model_copy(update={"version": 2, "connectionId": connection_id})
    assert (copied.version, copied.connection_id) == (2, connection_id)
    assert copied.occurred_at == original.occurred_at
    assert "connectionId" not in copied.__dict__
    assert copied.model_fields_set == original.model_fields_set
    assert original.model_copy(deep=True) == original
    with pytest.raises(ValidationError):
        original.model_copy(update={"version": 0})


def test_built_payloads_travel_in_events() -> None:
    data = AuthSchemeConfigUpserted(**_upserted(OAuth2Settings(**_settings())))
    event = new_event("auth_scheme_config.upserted", source="s", orgid="o", data=data)
    assert parse_event(event.to_json_bytes()).data == data


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
