"""Auth scheme configs: how a connector authenticates (Versori ``AuthSchemeConfig``).

One pydantic model per ``schemeType``, one discriminated union. A config is
configuration only: the OAuth client secret a user submits in ``grant`` is
write-only (``exclude=True``: no dump, response, event or log ever has it); the
service moves it to the vault and keeps the credential id. URL fields accept
catalogue templates (``https://{{.workspace}}.zendesk.com/...``): the shape is
checked with the variables probed, the values are filled at connection time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from plugboard_contracts.enums import ApiKeyLocation, TokenEndpointAuthMethod
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from connector_registry.domain import templates
from connector_registry.domain.messages import ValidationMessage
from connector_registry.domain.text import check_storable
from connector_registry.domain.urlparams import (
    RESERVED_AUTHORIZE,
    RESERVED_TOKEN,
    UrlParamsError,
    parse_params,
)


def _url(value: str) -> str:
    """An absolute http(s) URL, templates allowed; https is judged by the messages, not here."""
    if len(value) > 2048 or not templates.is_well_formed(value):
        raise ValueError("must be an absolute http(s) URL")
    parts = urlsplit(templates.probe(value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


def _authorize_params(value: str) -> str:
    try:
        parse_params(value, reserved=RESERVED_AUTHORIZE)
    except UrlParamsError as exc:
        raise ValueError(f"must be a URL-encoded parameter string ({exc})") from None
    return value


def _token_params(value: str) -> str:
    try:
        parse_params(value, reserved=RESERVED_TOKEN)
    except UrlParamsError as exc:
        raise ValueError(f"must be a URL-encoded parameter string ({exc})") from None
    return value


Url = Annotated[str, AfterValidator(_url)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
AuthorizeParams = Annotated[str, Field(max_length=4096), AfterValidator(_authorize_params)]
TokenParams = Annotated[str, Field(max_length=4096), AfterValidator(_token_params)]


class SchemeType(StrEnum):
    NONE = "none"
    API_KEY = "api-key"
    BASIC_AUTH = "basic-auth"
    OAUTH2 = "oauth2"
    HMAC = "hmac"
    CERTIFICATE = "certificate"
    JWT_BEARER = "jwt-bearer"


class GrantKind(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    CLIENT_CREDENTIALS = "client_credentials"
    PASSWORD = "password"
    JWT_BEARER = "jwt-bearer"


class HmacAlgorithm(StrEnum):
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"


class HmacInput(StrEnum):
    BODY = "body"
    URL = "url"


class HmacEncoding(StrEnum):
    HEX = "hex"
    BASE64 = "base64"


class WireModel(BaseModel):
    """The registry's wire models: camelCase, closed, immutable, storable text only."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return check_storable(data)


class _Scheme(WireModel):
    id: Name | None = Field(default=None, description="Client-chosen, unique per connector.")
    description: str | None = Field(default=None, max_length=1000)
    validation_messages: list[ValidationMessage] = Field(
        default_factory=list, description="Computed by the server; ignored on input."
    )

    @field_validator("validation_messages", mode="before")
    @classmethod
    def _ignored_on_input(cls, _value: object) -> list[ValidationMessage]:
        """Versori: "This field will be ignored if sent to the API"; the server recomputes it."""
        return []


class NoneScheme(_Scheme):
    scheme_type: Literal[SchemeType.NONE]


class ApiKeyScheme(_Scheme):
    scheme_type: Literal[SchemeType.API_KEY]
    name: Name = Field(description="Query parameter, header or cookie name.")
    in_: ApiKeyLocation = Field(alias="in")
    value_prefix: str | None = Field(default=None, max_length=100, description='e.g. "Bearer ".')


class BasicAuthScheme(_Scheme):
    scheme_type: Literal[SchemeType.BASIC_AUTH]


class OAuth2Scope(WireModel):
    name: Name
    description: str | None = Field(default=None, max_length=2000)


class OAuth2Grant(WireModel):
    """Versori's merge rules apply: no credentialId creates the vault credential, a
    credentialId merge-patches it, anything else is a 400 (checked by the service)."""

    type: GrantKind = GrantKind.AUTHORIZATION_CODE
    client_id: str | None = Field(default=None, min_length=1, max_length=500)
    client_secret: SecretStr | None = Field(
        default=None, exclude=True, max_length=4096, description="Write-only; kept in the vault."
    )
    credential_id: UUID | None = Field(default=None, description="The vault oauth2-client.")
    organisation_id: str | None = Field(default=None, description="Must be the caller's org.")


class OAuth2Scheme(_Scheme):
    scheme_type: Literal[SchemeType.OAUTH2]
    authorize_url: Url | None = None
    token_url: Url | None = None
    revocation_url: Url | None = None
    discovery_url: Url | None = Field(
        default=None, description="OpenID Connect discovery document (imported openIdConnect)."
    )
    scopes: list[OAuth2Scope] = Field(default_factory=list, max_length=2000)
    default_scopes: list[Name] = Field(default_factory=list, max_length=500)
    scope_separator: str = Field(default=" ", min_length=1, max_length=5)
    grant: OAuth2Grant = Field(default_factory=OAuth2Grant)
    pkce: bool = True
    token_endpoint_auth_method: TokenEndpointAuthMethod = (
        TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
    )
    additional_authorize_params: AuthorizeParams | None = None
    additional_token_params: TokenParams | None = None
    mtls_enabled: bool = False
    mtls_credential_id: UUID | None = None
    issuer: Url | None = Field(default=None, description="Expected RFC 9207 iss.")
    token_response_metadata: list[Name] = Field(default_factory=list, max_length=50)
    refresh_margin_seconds: int | None = Field(default=None, ge=0, le=86400)


class HmacScheme(_Scheme):
    scheme_type: Literal[SchemeType.HMAC]
    name: Name = Field(description="Where the signature goes: parameter, header or cookie name.")
    in_: ApiKeyLocation = Field(alias="in")
    algorithm: HmacAlgorithm = HmacAlgorithm.SHA256
    inputs: list[HmacInput] = Field(min_length=1, max_length=2, description="Order of hashing.")
    encoding: HmacEncoding = HmacEncoding.HEX

    @field_validator("inputs")
    @classmethod
    def _distinct(cls, value: list[HmacInput]) -> list[HmacInput]:
        if len(set(value)) != len(value):
            raise ValueError("each input may appear once")
        return value


class CertificateScheme(_Scheme):
    scheme_type: Literal[SchemeType.CERTIFICATE]


class JwtBearerScheme(_Scheme):
    """A signed JWT: exchanged at ``tokenUrl`` (RFC 7523), or sent as the bearer itself."""

    scheme_type: Literal[SchemeType.JWT_BEARER]
    token_url: Url | None = None
    audience: str | None = Field(default=None, max_length=500)
    scopes: list[Name] = Field(default_factory=list, max_length=500)


AuthSchemeConfig = Annotated[
    NoneScheme
    | ApiKeyScheme
    | BasicAuthScheme
    | OAuth2Scheme
    | HmacScheme
    | CertificateScheme
    | JwtBearerScheme,
    Field(discriminator="scheme_type"),
]
SCHEME_ADAPTER: TypeAdapter[AuthSchemeConfig] = TypeAdapter(AuthSchemeConfig)
SchemeModel = (
    NoneScheme
    | ApiKeyScheme
    | BasicAuthScheme
    | OAuth2Scheme
    | HmacScheme
    | CertificateScheme
    | JwtBearerScheme
)


def parse_scheme(data: object) -> SchemeModel:
    """Validate stored or submitted JSON into its scheme model (pydantic errors name fields)."""
    return SCHEME_ADAPTER.validate_python(data)


def stored_form(scheme: SchemeModel) -> dict[str, object]:
    """What the database keeps: no secret (excluded), no messages (recomputed on read)."""
    return scheme.model_dump(mode="json", exclude={"validation_messages"}, exclude_none=True)
