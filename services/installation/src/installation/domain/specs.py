"""Integration revisions and installation configs: the documents and their rules.

A revision is Ampersand's per-integration manifest (``amp.yaml``): which objects it
reads, writes and subscribes to, and whether it proxies. It is validated once and
stored immutably. An installation config picks from its revision: every object it
configures must be one the revision declares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

SPEC_VERSIONS = ("1.0.0",)
_Name = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")


class _Doc(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )


class FieldRef(_Doc):
    field_name: str = _Name


class ReadObject(_Doc):
    object_name: str = _Name
    destination: str | None = Field(default=None, max_length=200)
    schedule: str | None = Field(default=None, max_length=100)
    required_fields: list[FieldRef] = Field(default_factory=list, max_length=500)
    optional_fields: list[FieldRef] = Field(default_factory=list, max_length=500)


class WriteObject(_Doc):
    object_name: str = _Name
    inherit_mapping: bool = False


class SubscribeObject(_Doc):
    object_name: str = _Name
    destination: str | None = Field(default=None, max_length=200)


class _Objects(_Doc):
    @model_validator(mode="after")
    def _unique(self) -> _Objects:
        names = [obj.object_name for obj in getattr(self, "objects", [])]
        if len(names) != len(set(names)):
            raise ValueError("objectName must be unique")
        return self


class ReadSpec(_Objects):
    objects: list[ReadObject] = Field(min_length=1, max_length=200)


class WriteSpec(_Objects):
    objects: list[WriteObject] = Field(min_length=1, max_length=200)


class SubscribeSpec(_Objects):
    objects: list[SubscribeObject] = Field(min_length=1, max_length=200)


class ProxySpec(_Doc):
    enabled: bool


class RevisionSpec(_Doc):
    """The validated content of one revision; at least one capability."""

    spec_version: Literal["1.0.0"]
    read: ReadSpec | None = None
    write: WriteSpec | None = None
    subscribe: SubscribeSpec | None = None
    proxy: ProxySpec | None = None

    @model_validator(mode="after")
    def _some_capability(self) -> RevisionSpec:
        if not (self.read or self.write or self.subscribe or self.proxy):
            raise ValueError("a revision declares at least one of read, write, subscribe, proxy")
        return self

    def object_names(self, capability: str) -> set[str]:
        spec = getattr(self, capability, None)
        return {obj.object_name for obj in spec.objects} if spec is not None else set()


class ConfigObjects(_Doc):
    objects: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=200)


class ConfigContent(_Doc):
    """An installation's config (seed 001 ``config.content``)."""

    provider: str | None = Field(default=None, max_length=100)
    read: ConfigObjects | None = None
    write: ConfigObjects | None = None


def config_problems(revision: RevisionSpec, content: ConfigContent) -> list[tuple[str, str]]:
    """(field, message) for every object the config names that its revision does not."""
    problems: list[tuple[str, str]] = []
    for capability in ("read", "write"):
        section: ConfigObjects | None = getattr(content, capability)
        if section is None:
            continue
        declared = revision.object_names(capability)
        for name in section.objects:
            if name not in declared:
                field = f"body.config.content.{capability}.objects.{name}"
                problems.append((field, f"the revision does not {capability} this object"))
    return problems
