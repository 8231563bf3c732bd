"""Wire models of connectors and versions (camelCase, closed): what clients send.

Shared by the routes and the use cases so a field is declared once. Output models
are in ``api/schemas``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from plugboard_contracts.enums import ConnectorProtocol
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from connector_registry.domain.schemes import AuthSchemeConfig, Name, Url
from connector_registry.domain.text import check_storable

_DATASET = re.compile(r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+$")


def _dataset(value: str) -> str:
    if not _DATASET.fullmatch(value):
        raise ValueError('must be "<project_id>.<dataset_name>"')
    return value


DatasetId = Annotated[str, Field(max_length=1024), AfterValidator(_dataset)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class In(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return check_storable(data)


class ConnectionVariable(In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    value: str = Field(default="", max_length=2000)


class ConnectorFields(In):
    protocol: ConnectorProtocol = ConnectorProtocol.HTTP
    base_url: Url | None = None
    dataset_id: DatasetId | None = None
    documentation_url: Url | None = None
    icon_url: Url | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    categories: list[Tag] = Field(default_factory=list, max_length=50)
    connection_variables: list[ConnectionVariable] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _protocol_fields(self) -> ConnectorFields:
        """Versori: http connectors have a baseUrl, bigquery ones a datasetId."""
        if self.protocol == ConnectorProtocol.HTTP and self.dataset_id is not None:
            raise ValueError("datasetId is only for bigquery connectors")
        if self.protocol == ConnectorProtocol.BIGQUERY:
            if self.dataset_id is None:
                raise ValueError("datasetId is required for bigquery connectors")
            if self.base_url is not None:
                raise ValueError("baseUrl is only for http connectors")
        return self


class ConnectorIn(ConnectorFields):
    name: Name
    auth_scheme_configs: list[AuthSchemeConfig] = Field(default_factory=list, max_length=20)


class ConnectorPatch(In):
    """Fields to change; an absent field stays, ``null`` clears an optional one."""

    name: Name | None = None
    base_url: Url | None = None
    dataset_id: DatasetId | None = None
    documentation_url: Url | None = None
    icon_url: Url | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    categories: list[Tag] | None = Field(default=None, max_length=50)
    connection_variables: list[ConnectionVariable] | None = Field(default=None, max_length=100)


class VersionIn(In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: str | None = Field(default=None, max_length=2000)
    is_default: bool = False


class VersionPatch(In):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    description: str | None = Field(default=None, max_length=2000)
    is_default: bool | None = None
