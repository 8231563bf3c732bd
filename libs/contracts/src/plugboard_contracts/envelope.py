"""The CloudEvents 1.0 envelope every Kafka message value carries (structured JSON mode)."""

from __future__ import annotations

from typing import Generic, Literal, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from plugboard_contracts.ids import uuid7
from plugboard_contracts.timestamps import UtcDatetime, utcnow

DataT = TypeVar("DataT")


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event; attribute names are the spec's, ``orgid`` is our extension.

    ``CloudEvent[SomePayload]`` is what producers build (see
    ``topics.new_event``); consumers parse ``CloudEvent[dict[str, Any]]`` and
    validate ``data`` with the payload model of the topic. Unknown extension
    attributes are kept rather than rejected, as CloudEvents asks of
    consumers, so a producer adding one never dead-letters old consumers.
    """

    model_config = ConfigDict(
        extra="allow", frozen=True, json_schema_serialization_defaults_required=True
    )

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(default_factory=uuid7, description="UUIDv7; consumers dedupe on it.")
    source: str = Field(min_length=1, description="The publishing service, e.g. credential-vault.")
    type: str = Field(min_length=1, description="The event type, also the Kafka topic.")
    subject: str = Field(min_length=1, description="Aggregate id, also the Kafka message key.")
    time: UtcDatetime = Field(default_factory=utcnow, description="When the event was created.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, description="URI of this event's JSON Schema.")
    orgid: str = Field(min_length=1, description="Tenant (organisation) the event belongs to.")
    data: DataT

    def to_json_bytes(self) -> bytes:
        """Serialise to the Kafka message value (camelCase payload fields)."""
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes | str) -> Self:
        """Parse a Kafka message value; raises ``pydantic.ValidationError`` when invalid."""
        return cls.model_validate_json(raw)
