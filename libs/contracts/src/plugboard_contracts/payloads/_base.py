"""Base model and shared fields of every event payload."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from plugboard_contracts.timestamps import UtcDatetime, utcnow


class Payload(BaseModel):
    """Base of all payloads: camelCase on the wire, immutable, tolerant on read.

    ``extra="ignore"``: a consumer built against an older contract reads an
    event that carries a field added since, and drops that field (the
    tolerant reader), so adding an optional field never breaks a subscriber
    of another team. Producers cannot send an unknown field either: what a
    model does not declare is dropped on construction, never serialised, and
    pyright rejects the unknown keyword in our code. Removing, renaming or
    retyping a field, or adding a required one, is a breaking change that
    ``export_schemas`` refuses unless the event type's version is raised.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
        json_schema_serialization_defaults_required=True,
        field_title_generator=lambda name, _info: name.replace("_", " ").capitalize(),
    )

    organisation_id: str = Field(
        min_length=1,
        description="Owning organisation (tenant); equals the envelope's orgid.",
    )
    occurred_at: UtcDatetime = Field(
        default_factory=utcnow,
        description="When the state change happened (committed), UTC.",
    )


class VersionedPayload(Payload):
    """A state event of an aggregate: consumers apply it only when newer than the last seen."""

    version: int = Field(
        ge=1, description="The aggregate's version after the change; consumers drop older ones."
    )
