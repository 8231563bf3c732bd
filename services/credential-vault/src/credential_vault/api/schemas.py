"""Wire models of the credential API (camelCase, Versori's names).

``data`` is accepted on create and patch but never returned except by
``:reveal``; reads show ``fieldsSet`` (which fields hold a value) instead.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from plugboard_contracts.enums import CredentialType
from plugboard_contracts.timestamps import UtcDatetime
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from credential_vault.domain.data import OAuth2TokenData
from credential_vault.domain.text import PlainText
from credential_vault.repository import CredentialRow
from credential_vault.service import CredentialView
from credential_vault.usage_repository import UsageRow


class _In(BaseModel):
    """Requests: camelCase only, unknown members rejected (they name the field)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")


class _Out(BaseModel):
    """Responses: built from Python names, serialised camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True
    )


class CredentialCreateIn(_In):
    name: PlainText = Field(min_length=1, max_length=200)
    type: CredentialType
    data: dict[str, Any] = Field(default_factory=dict, description="Validated per type.")
    expires_at: UtcDatetime | None = Field(
        default=None, description="When the vault deletes the credential (reason expired)."
    )
    provider_app_id: UUID | None = Field(
        default=None,
        description="Provider app (OAuth client) whose tokens these are; oauth2-* types only.",
    )


class CredentialPatchIn(_In):
    """JSON Merge Patch of the patchable members; null removes (not allowed for name)."""

    name: PlainText | None = Field(default=None, min_length=1, max_length=200)
    data: dict[str, Any] | None = None
    expires_at: UtcDatetime | None = None

    @field_validator("name")
    @classmethod
    def _name_cannot_be_removed(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be removed")
        return value


class ConnectionRefOut(_Out):
    id: UUID
    name: str
    connector_id: UUID | None
    provider: str | None
    created_at: datetime
    updated_at: datetime


class UsageOut(_Out):
    connection: ConnectionRefOut

    @classmethod
    def of(cls, usage: UsageRow) -> UsageOut:
        return cls(
            connection=ConnectionRefOut(
                id=usage.connection_id,
                name=usage.name,
                connector_id=usage.connector_id,
                provider=usage.provider,
                created_at=usage.created_at,
                updated_at=usage.updated_at,
            )
        )


class _CredentialBase(_Out):
    id: UUID
    organisation_id: str
    name: str
    type: CredentialType
    version: int
    expires_at: datetime | None


class CredentialOut(_CredentialBase):
    fields_set: list[str] = Field(description="Fields of data holding a value; never values.")
    errors: list[str] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Absent: not validated; []: valid.",
    )
    usages: list[UsageOut]
    provider_app_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: CredentialView) -> CredentialOut:
        row = view.row
        return cls(
            **_base(row),
            fields_set=row.fields_set,
            errors=row.errors,
            usages=[UsageOut.of(usage) for usage in view.usages],
            provider_app_id=row.provider_app_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class RevealedCredentialOut(_CredentialBase):
    """The reveal response (documentation: the route returns ``revealed_json``)."""

    data: dict[str, Any] = Field(description="The plaintext data, as validated for the type.")


class RevocationOut(_Out):
    """``:take-revocation``: the tokens of a deleted oauth2-token credential, once."""

    access_token: str | None = Field(description="The last access token stored.")
    refresh_token: str | None = Field(description="The last refresh token stored, if any.")
    token_type: str | None = Field(description="The token type, if the provider named one.")


MAX_BATCH_REVEAL = 100


class BatchRevealIn(_In):
    ids: list[UUID] = Field(
        min_length=1,
        max_length=MAX_BATCH_REVEAL,
        description="Credentials to reveal; ids not found (or not the caller's) are "
        "listed under notFound.",
    )


class BatchRevealedOut(_Out):
    """The batch reveal response (documentation: the route splices ``revealed_json``)."""

    items: list[RevealedCredentialOut]
    not_found: list[UUID]


class TokenReplacementIn(_In):
    id: UUID
    if_match: int = Field(ge=1, le=999_999_999, description="The version these tokens replace.")
    data: OAuth2TokenData


class BatchReplaceIn(_In):
    items: list[TokenReplacementIn] = Field(min_length=1, max_length=MAX_BATCH_REVEAL)

    @field_validator("items")
    @classmethod
    def _one_item_per_credential(cls, items: list[TokenReplacementIn]) -> list[TokenReplacementIn]:
        if len({item.id for item in items}) != len(items):
            raise ValueError("each credential may appear once")
        return items


class BatchReplacedItem(_Out):
    """200 with the new version, or the status (404, 409, 412, 422) the single call answers."""

    id: UUID
    status: int
    version: int | None = None
    detail: str | None = None


class BatchReplacedOut(_Out):
    items: list[BatchReplacedItem]


def batch_revealed_json(revealed: list[tuple[CredentialRow, bytes]], asked: list[UUID]) -> bytes:
    found = {row.id for row, _ in revealed}
    missing = [str(cid) for cid in dict.fromkeys(asked) if cid not in found]
    items = b",".join(revealed_json(row, plaintext) for row, plaintext in revealed)
    return b'{"items":[' + items + b'],"notFound":' + json.dumps(missing).encode() + b"}"


def revealed_json(row: CredentialRow, plaintext: bytes) -> bytes:
    """The reveal body, splicing in the plaintext as stored: it is the canonical JSON
    object the data model wrote, so parsing and re-serialising it would only cost time."""
    metadata = _CredentialBase(**_base(row)).model_dump_json().encode()
    return b'{"data":' + plaintext + b"," + metadata[1:]


def _base(row: CredentialRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "organisation_id": row.org_id,
        "name": row.name,
        "type": row.type,
        "version": row.version,
        "expires_at": row.expires_at,
    }


class CredentialPage(_Out):
    items: list[CredentialOut]
    next_page_token: str | None
