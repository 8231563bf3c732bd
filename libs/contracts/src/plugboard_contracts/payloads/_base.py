"""Base models of every event payload: tolerant when read, strict when produced."""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from plugboard_contracts.timestamps import UtcDatetime, utcnow


class WireModel(BaseModel):
    """A model that travels in events: readers ignore unknown fields, producers cannot send one.

    The config says ``extra="ignore"``, which is what readers get:
    ``model_validate`` / ``model_validate_json`` and the envelope's
    ``CloudEvent[Payload]`` parsing of ``data``. A consumer built against an
    older contract so reads an event carrying a field added since (the
    tolerant reader), and adding an optional field never breaks a subscriber
    of another team.

    Producers build payloads by keyword, and there an unknown field is a
    mistake (a typo, a removed field, a secret that should not travel) that
    ``extra="ignore"`` would drop silently. ``__init__`` therefore validates
    with ``extra="forbid"`` (pydantic >= 2.12), nested models and dicts
    included, and raises ``ValidationError`` (``extra_forbidden``, located at
    the field). ``model_copy(update=...)`` goes through ``__init__`` too, so a
    copy is validated and cannot gain an unknown field either.
    """

    def __init__(self, /, **data: Any) -> None:
        __tracebackhide__ = True
        self.__pydantic_validator__.validate_python(data, self_instance=self, extra="forbid")

    # Pydantic calls a model's own ``__init__`` from every validation (readers' too) unless
    # it is marked as the base one, as ``BaseModel.__init__`` and ``RootModel.__init__``
    # are; unmarked, readers would refuse unknown fields (test_parse_event catches that).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied and validated; keys are field names or aliases.

        Pydantic's own ``model_copy`` neither validates ``update`` nor refuses
        unknown keys: it would put them into ``__dict__``, and a camelCase key
        would not replace the field. Here both are ``ValidationError``s, like
        on construction. Fields not updated keep their values (``occurredAt``
        is not stamped anew) and ``model_fields_set`` stays as pydantic's.
        """
        if not update:
            return super().model_copy(deep=deep)
        names = {field.alias: name for name, field in type(self).model_fields.items()}
        changes = {names.get(key, key): value for key, value in update.items()}
        kept = {name: value for name, value in self if name not in changes}
        copied = type(self)(**(deepcopy(kept) if deep else kept), **changes)
        fields_set = self.model_fields_set | changes.keys()
        object.__setattr__(copied, "__pydantic_fields_set__", fields_set)
        return copied


class Payload(WireModel):
    """Base of all payloads: camelCase on the wire, immutable, tolerant on read.

    Unknown fields are ignored when read and refused when produced (see
    ``WireModel``). Removing, renaming or retyping a field, or adding a
    required one, is a breaking change that ``export_schemas`` refuses unless
    the event type's version is raised.
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
