import pytest
from plugboard_contracts import payloads
from plugboard_contracts.enums import CredentialType
from plugboard_contracts.ids import uuid7
from plugboard_contracts.topics import CATALOGUE, all_topic_names, dlq_topic, new_event


def _created() -> payloads.CredentialCreated:
    return payloads.CredentialCreated(
        organisation_id="org-1",
        credential_id=uuid7(),
        type=CredentialType.OAUTH2_CODE,
        name="hubspot",
        version=1,
        has_refresh_token=True,
    )


def test_new_event_fills_the_envelope() -> None:
    data = _created()
    event = new_event("credential.created", source="credential-vault", orgid="org-1", data=data)
    assert event.type == "credential.created"
    assert event.subject == str(data.credential_id)
    assert event.dataschema == "https://schemas.plugboard.dev/events/credential.created.json"
    assert event.id.version == 7
    assert event.time.utcoffset() is not None
    assert event.data is data


def test_new_event_rejects_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        new_event("credential.exploded", source="credential-vault", orgid="org-1", data=_created())


def test_new_event_rejects_the_wrong_payload_even_with_the_same_shape() -> None:
    with pytest.raises(TypeError, match="CredentialUpdated"):
        new_event("credential.updated", source="credential-vault", orgid="org-1", data=_created())


def test_new_event_rejects_another_tenants_payload() -> None:
    with pytest.raises(ValueError, match="organisationId"):
        new_event("credential.created", source="credential-vault", orgid="org-2", data=_created())


def test_every_key_field_is_a_field_of_its_payload() -> None:
    for spec in CATALOGUE.values():
        assert spec.key_field in spec.payload.model_fields, spec.type
        assert spec.payload.model_fields[spec.key_field].is_required(), spec.type


def test_catalogue_covers_every_payload_model_exactly_once() -> None:
    models = [getattr(payloads, name) for name in payloads.__all__ if name != "Payload"]
    assert sorted(spec.payload.__name__ for spec in CATALOGUE.values()) == sorted(
        model.__name__ for model in models
    )
    assert all(spec.type == name for name, spec in CATALOGUE.items())


def test_topic_names_include_dead_letter_topics_on_request() -> None:
    assert dlq_topic("credential.expired") == "credential.expired.dlq"
    without = all_topic_names(include_dlq=False)
    assert without == sorted(CATALOGUE)
    assert set(all_topic_names()) == set(without) | {dlq_topic(name) for name in without}
