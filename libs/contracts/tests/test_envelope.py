import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_contracts.payloads import CredentialExpired
from pydantic import ValidationError


def _payload() -> CredentialExpired:
    return CredentialExpired(
        organisation_id="org-1",
        credential_id=uuid7(),
        type=CredentialType.OAUTH2_CODE,
        name="salesforce prod",
        version=3,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def _event(**overrides: Any) -> CloudEvent[CredentialExpired]:
    fields: dict[str, Any] = {
        "source": "credential-vault",
        "type": "credential.expired",
        "subject": "s",
        "orgid": "org-1",
        "data": _payload(),
    } | overrides
    return CloudEvent[CredentialExpired](**fields)


def test_round_trip_bytes_model_bytes() -> None:
    raw = _event().to_json_bytes()
    parsed = CloudEvent[CredentialExpired].from_json_bytes(raw)
    assert parsed.to_json_bytes() == raw
    assert isinstance(parsed.data, CredentialExpired)


def test_wire_uses_cloudevents_attribute_names_and_camel_case_data() -> None:
    wire = json.loads(_event().to_json_bytes())
    assert set(wire) == {
        "specversion", "id", "source", "type", "subject", "time",
        "datacontenttype", "dataschema", "orgid", "data",
    }  # fmt: skip
    assert wire["specversion"] == "1.0"
    assert wire["datacontenttype"] == "application/json"
    assert wire["data"]["credentialId"]
    assert wire["data"]["expiresAt"] == "2030-01-01T00:00:00Z"


def test_consumer_view_is_a_plain_dict() -> None:
    parsed = CloudEvent[dict[str, Any]].from_json_bytes(_event().to_json_bytes())
    assert CredentialExpired.model_validate(parsed.data).version == 3


def test_time_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = _event(time=datetime(2030, 1, 1, 2, 0, tzinfo=plus_two))
    assert event.time == datetime(2030, 1, 1, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(0)


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValidationError):
        _event(time=datetime(2030, 1, 1))


def test_unknown_extension_attributes_survive_a_round_trip() -> None:
    wire = json.loads(_event().to_json_bytes()) | {"partitionkey": "abc"}
    parsed = CloudEvent[dict[str, Any]].from_json_bytes(json.dumps(wire))
    assert json.loads(parsed.to_json_bytes())["partitionkey"] == "abc"


def test_wrong_specversion_is_rejected() -> None:
    wire = json.loads(_event().to_json_bytes()) | {"specversion": "0.3"}
    with pytest.raises(ValidationError):
        CloudEvent[dict[str, Any]].from_json_bytes(json.dumps(wire))
