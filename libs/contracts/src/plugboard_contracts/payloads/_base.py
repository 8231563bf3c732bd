"""Base model and shared fields of every event payload."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from plugboard_contracts.timestamps import UtcDatetime, utcnow


class Payload(BaseModel):
    """Base of all payloads: camelCase on the wire, immutable, no unknown fields.

    ``extra="forbid"`` catches producer typos and makes the exported schemas
    closed (``additionalProperties: false``), so adding a field shows up in
    the schema diff. The flip side: deploy consumers of a new field before
    producers send it.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
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
