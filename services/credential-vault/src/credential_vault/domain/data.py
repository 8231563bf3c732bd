"""Secret data of each credential type: one pydantic model per type, one discriminated union.

The wire names are Versori's (camelCase). Each model carries its ``type`` as a
hidden discriminator (excluded from dumps) so that one ``TypeAdapter`` picks the
model for a credential type and reports errors at the offending field. Field
checks that need more than a type (PEM parsing, key kinds) live in ``check()``
so they can name the exact field; soft findings become the credential's
``errors`` list.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from plugboard_contracts.enums import CredentialType, JwtAlgorithm
from plugboard_contracts.timestamps import UtcDatetime
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from credential_vault.domain.certificates import check_certificate
from credential_vault.domain.findings import Findings
from credential_vault.domain.jwt_bearer import check_jwt_bearer
from credential_vault.domain.text import PlainText


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("must be standard base64") from None
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Base64Text = Annotated[str, AfterValidator(_base64)]
NonEmpty = Annotated[str, Field(min_length=1)]


class SecretData(BaseModel):
    """Base of every data model: camelCase, closed, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, extra="forbid", frozen=True
    )

    def __repr_args__(self) -> Iterator[tuple[str, str]]:
        """Show which fields exist, never their values, should data reach a log or a trace."""
        for name in self.model_fields_set:
            yield name, "[REDACTED]"

    def check(self) -> Findings:
        """Checks beyond the field types; overridden where a type has any."""
        return Findings()

    def fields_set(self) -> list[str]:
        """Names of the fields holding a value: what GET shows instead of the values."""
        return sorted(self.model_dump(exclude_none=True))

    def plaintext(self) -> bytes:
        """The canonical JSON that gets encrypted (defaults filled in, unset optionals left out)."""
        return self.model_dump_json(exclude_none=True).encode()


class NoneData(SecretData):
    type: Literal[CredentialType.NONE] = Field(default=CredentialType.NONE, exclude=True)


class StringData(SecretData):
    type: Literal[CredentialType.STRING] = Field(default=CredentialType.STRING, exclude=True)
    value: NonEmpty


class BinaryData(SecretData):
    type: Literal[CredentialType.BINARY] = Field(default=CredentialType.BINARY, exclude=True)
    value_base64: Base64Text


class BasicAuthData(SecretData):
    type: Literal[CredentialType.BASIC_AUTH] = Field(
        default=CredentialType.BASIC_AUTH, exclude=True
    )
    username: NonEmpty
    password: str


class OAuth2ClientData(SecretData):
    type: Literal[CredentialType.OAUTH2_CLIENT] = Field(
        default=CredentialType.OAUTH2_CLIENT, exclude=True
    )
    client_id: NonEmpty
    client_secret: str | None = None
    authorize_url: HttpUrl | None = None
    token_url: HttpUrl | None = None
    scopes: list[str] = Field(default_factory=list)
    additional_params: dict[str, str] = Field(default_factory=dict)
    mtls_enabled: bool = False
    mtls_credential_id: UUID | None = None

    def check(self) -> Findings:
        """mTLS clients authenticate with a certificate credential, the others with a secret."""
        findings = Findings()
        if self.mtls_enabled and self.mtls_credential_id is None:
            findings.issue("mtlsCredentialId", "required when mtlsEnabled is true")
        if not self.mtls_enabled and not self.client_secret:
            findings.issue("clientSecret", "required unless mtlsEnabled is true")
        return findings


class OAuth2CodeData(SecretData):
    type: Literal[CredentialType.OAUTH2_CODE] = Field(
        default=CredentialType.OAUTH2_CODE, exclude=True
    )
    code: NonEmpty
    state: str | None = None


class OAuth2PasswordData(SecretData):
    type: Literal[CredentialType.OAUTH2_PASSWORD] = Field(
        default=CredentialType.OAUTH2_PASSWORD, exclude=True
    )
    username: NonEmpty
    password: str
    client_id: str | None = None
    client_secret: str | None = None


class OAuth2TokenData(SecretData):
    type: Literal[CredentialType.OAUTH2_TOKEN] = Field(
        default=CredentialType.OAUTH2_TOKEN, exclude=True
    )
    access_token: NonEmpty
    refresh_token: str | None = None
    token_type: str | None = None
    scopes: list[str] | None = None
    access_token_expires_at: UtcDatetime | None = None
    issued_at: UtcDatetime | None = None


class CustomFunctionData(SecretData):
    type: Literal[CredentialType.CUSTOM_FUNCTION] = Field(
        default=CredentialType.CUSTOM_FUNCTION, exclude=True
    )
    fields: dict[PlainText, str] = Field(default_factory=dict)

    def fields_set(self) -> list[str]:
        """The keys are names, not secrets: list each so callers see which are configured."""
        return sorted(f"fields.{key}" for key in self.fields)


class CertificateData(SecretData):
    type: Literal[CredentialType.CERTIFICATE] = Field(
        default=CredentialType.CERTIFICATE, exclude=True
    )
    certificate: NonEmpty
    key: NonEmpty
    ca: str | None = None

    def check(self) -> Findings:
        return check_certificate(self.certificate, self.key, self.ca)


class JwtBearerData(SecretData):
    type: Literal[CredentialType.JWT_BEARER] = Field(
        default=CredentialType.JWT_BEARER, exclude=True
    )
    algorithm: JwtAlgorithm
    secret: str | None = None
    private_key: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    expires_in: int = Field(default=3600, gt=0, le=86_400)
    authorization_header_prefix: str = "Bearer"

    def check(self) -> Findings:
        return check_jwt_bearer(self.algorithm, self.secret, self.private_key)


CredentialData = Annotated[
    NoneData
    | StringData
    | BinaryData
    | BasicAuthData
    | OAuth2ClientData
    | OAuth2CodeData
    | OAuth2PasswordData
    | OAuth2TokenData
    | CustomFunctionData
    | CertificateData
    | JwtBearerData,
    Field(discriminator="type"),
]
"""The data of any credential; ``type`` (hidden, excluded from dumps) selects the model."""


def token_metadata(data: SecretData) -> tuple[datetime | None, bool]:
    """(accessTokenExpiresAt, hasRefreshToken): the non-secret facts events carry."""
    if isinstance(data, OAuth2TokenData):
        return data.access_token_expires_at, bool(data.refresh_token)
    return None, False
