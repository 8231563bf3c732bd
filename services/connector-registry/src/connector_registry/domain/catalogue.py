"""The provider catalogue: which SaaS APIs exist and how each authenticates (Ampersand).

Each entry is expressed in our own terms: its auth schemes are auth scheme
configs as a connector would hold them (URLs may be templates over the entry's
declared ``inputs``). The built-in entries live in ``catalogue/providers.json``,
converted from amp-labs/connectors (MIT; attribution beside the file) and
validated against ``catalogue/providers.schema.json``; orgs add their own through
the API and the Nango importer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated, Any, Literal

from plugboard_contracts.enums import ConnectorProtocol
from pydantic import Field, TypeAdapter

from connector_registry.domain import templates
from connector_registry.domain.schemes import (
    AuthSchemeConfig,
    GrantKind,
    JwtBearerScheme,
    OAuth2Scheme,
    SchemeModel,
    Url,
    WireModel,
)

ProviderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class ProviderInput(WireModel):
    """A value the user supplies when connecting (a subdomain, a tenant id, ...)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]
    description: str | None = Field(default=None, max_length=1000)
    required: bool = True
    default: str | None = Field(default=None, max_length=500)


class ProviderSource(WireModel):
    origin: Literal["amp-labs/connectors", "nango", "org"]
    path: str | None = Field(default=None, max_length=300)


class Provider(WireModel):
    name: ProviderName
    display_name: str = Field(min_length=1, max_length=200)
    protocol: ConnectorProtocol = ConnectorProtocol.HTTP
    base_url: Url | None = Field(default=None, description="Template over inputs.")
    dataset_template: str | None = Field(
        default=None, max_length=300, description='bigquery: "{{.projectId}}.{{.dataset}}".'
    )
    docs_url: Url | None = None
    categories: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    inputs: list[ProviderInput] = Field(default_factory=list, max_length=50)
    auth_schemes: list[AuthSchemeConfig] = Field(min_length=1, max_length=20)
    notes: list[str] = Field(default_factory=list, max_length=20)
    source: ProviderSource = Field(default_factory=lambda: ProviderSource(origin="org"))

    def auth_types(self) -> list[str]:
        return list(dict.fromkeys(scheme.scheme_type.value for scheme in self.auth_schemes))

    def templated_strings(self) -> Iterator[tuple[str, str]]:
        """(field, template) for every value that may use input variables."""
        if self.base_url is not None:
            yield "baseUrl", self.base_url
        if self.dataset_template is not None:
            yield "datasetTemplate", self.dataset_template
        for index, scheme in enumerate(self.auth_schemes):
            for field, value in _scheme_strings(scheme):
                yield f"authSchemes[{index}].{field}", value


def _scheme_strings(scheme: SchemeModel) -> Iterator[tuple[str, str]]:
    dumped = scheme.model_dump(by_alias=True, exclude_none=True)
    for field in (
        "authorizeUrl",
        "tokenUrl",
        "revocationUrl",
        "discoveryUrl",
        "issuer",
        "additionalAuthorizeParams",
        "additionalTokenParams",
        "audience",
    ):
        value = dumped.get(field)
        if isinstance(value, str):
            yield field, value


PROVIDER_ADAPTER: TypeAdapter[Provider] = TypeAdapter(Provider)


def catalogue_entry(provider: Provider) -> dict[str, Any]:
    """The JSON an entry is stored and served as (messages are computed per read, not kept)."""
    return provider.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"auth_schemes": {"__all__": {"validation_messages"}}},
    )


def problems(provider: Provider, *, allow_http: bool = False) -> list[str]:
    """Rules beyond the schema, each a sentence naming the field (empty: the entry is sound).

    `allow_http`: an org's entry in dev mode may name an http endpoint (a local provider
    or mock server), as a connector's config may there; built-in entries never."""
    found: list[str] = []
    declared = {item.name for item in provider.inputs}
    for field, value in provider.templated_strings():
        if not templates.is_well_formed(value):
            found.append(f"{field}: malformed template")
        for name in templates.variables(value):
            if name not in declared:
                found.append(f"{field}: variable {name} is not a declared input")
        scheme = templates.probe(value).split("://", 1)[0]
        if field.endswith("Url") and scheme != "https" and not (allow_http and scheme == "http"):
            found.append(f"{field}: must be https")
    for index, scheme in enumerate(provider.auth_schemes):
        found += [f"authSchemes[{index}]: {text}" for text in _grant_problems(scheme)]
    explained = any("base URL" in note for note in provider.notes)
    if provider.protocol == ConnectorProtocol.HTTP and provider.base_url is None and not explained:
        found.append("baseUrl: required for http providers unless a note says why not")
    if provider.protocol == ConnectorProtocol.BIGQUERY and provider.dataset_template is None:
        found.append("datasetTemplate: required for bigquery providers")
    ids = [scheme.id for scheme in provider.auth_schemes]
    if None in ids or len(set(ids)) != len(ids):
        found.append("authSchemes: every scheme needs a distinct id")
    return found


def _grant_problems(scheme: SchemeModel) -> list[str]:
    """The grant type must fit the URLs present (RFC 6749: who uses which endpoint)."""
    if isinstance(scheme, JwtBearerScheme):
        return []
    if not isinstance(scheme, OAuth2Scheme):
        return []
    kind = scheme.grant.type
    found: list[str] = []
    if scheme.token_url is None and scheme.discovery_url is None:
        found.append("tokenUrl is required by every grant")
    no_authorize = scheme.authorize_url is None and scheme.discovery_url is None
    if kind == GrantKind.AUTHORIZATION_CODE and no_authorize:
        found.append("authorization_code needs authorizeUrl")
    if kind != GrantKind.AUTHORIZATION_CODE and scheme.authorize_url is not None:
        found.append(f"{kind.value} must not have authorizeUrl")
    return found


def _data() -> Traversable:
    return resources.files("connector_registry") / "catalogue"


@cache
def builtin() -> dict[str, Provider]:
    """The checked-in catalogue by name, parsed once per process."""
    entries = json.loads((_data() / "providers.json").read_text(encoding="utf-8"))
    providers = [PROVIDER_ADAPTER.validate_python(entry) for entry in entries["providers"]]
    return {provider.name: provider for provider in providers}


def schema_document() -> dict[str, Any]:
    return json.loads((_data() / "providers.schema.json").read_text(encoding="utf-8"))


def generated_schema() -> dict[str, Any]:
    """JSON Schema of the catalogue file, derived from the models (checked in; a test diffs)."""
    item = PROVIDER_ADAPTER.json_schema(by_alias=True)
    defs = item.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Plugboard provider catalogue",
        "type": "object",
        "required": ["attribution", "providers"],
        "additionalProperties": False,
        "properties": {
            "attribution": {"type": "string"},
            "providers": {"type": "array", "items": {"$ref": "#/$defs/Provider"}},
        },
        "$defs": {**defs, "Provider": item},
    }
