import json
from datetime import UTC, datetime
from typing import Any

import pytest
from plugboard_contracts import new_event, parse_event
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.ids import uuid7
from plugboard_contracts.parsing import UnknownEventTypeError
from plugboard_contracts.payloads import CredentialExpired
from pydantic import ValidationError


def _expired() -> CredentialExpired:
    return CredentialExpired(
        organisation_id="org-1", credential_id=uuid7(), type=CredentialType.STRING,
        name="k", version=2, expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def test_structured_event_parses_to_its_catalogue_payload() -> None:
    payload = _expired()
    raw = new_event("credential.expired", source="v", orgid="org-1", data=payload).to_json_bytes()
    event = parse_event(raw, [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")])
    assert isinstance(event.data, CredentialExpired)
    assert event.data == payload


def test_newer_producers_fields_are_ignored_everywhere() -> None:
    raw = json.loads(
        new_event("credential.expired", source="v", orgid="org-1", data=_expired()).to_json_bytes()
    )
    raw["data"]["addedInV7"] = [1, 2]
    raw["partitionkey"] = "extension attribute"
    event = parse_event(json.dumps(raw).encode())
    assert event.data.name == "k"


def test_binary_mode_headers_are_read() -> None:
    payload = _expired()
    headers: list[tuple[str, bytes | None]] = [
        ("ce_specversion", b"1.0"), ("ce_id", str(uuid7()).encode()), ("ce_source", b"other"),
        ("ce_type", b"credential.expired"), ("ce_subject", str(payload.credential_id).encode()),
        ("ce_time", b"2030-01-01T00:00:00Z"), ("ce_orgid", b"org-1"),
    ]  # fmt: skip
    event = parse_event(payload.model_dump_json().encode(), headers)
    assert event.source == "other"
    assert event.data.credential_id == payload.credential_id


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b'{"type": "nope.never", "data": {}}', UnknownEventTypeError),
        (b"[1, 2]", ValueError),
        (b"not json", ValueError),
        (b'{"type": "credential.expired", "data": {"credentialId": "x"}}', ValidationError),
    ],
)
def test_bad_values_raise_value_errors(value: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_event(value)


def test_an_instant_outside_utc_range_is_a_validation_error_not_an_overflow() -> None:
    data: dict[str, Any] = json.loads(_expired().model_dump_json())
    data["expiresAt"] = "9999-12-31T23:59:59-01:00"
    with pytest.raises(ValidationError):
        CredentialExpired.model_validate(data)
