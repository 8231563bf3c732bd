"""What a change to a stored credential is, and the steps every write shares.

The single writes (create, patch, ``:replace-token``) and the set-based token batch
(``token_batches``) take the same steps in the same order: If-Match, decrypt, the
change rule, its validation and reference checks, every refusal before anything is
written; then the data sealed for (org, id, version) with the metadata kept in the
clear. They live here once, so a batch item is refused or stored exactly as the
single call would refuse or store it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from plugboard_contracts.enums import CredentialType
from plugboard_servicekit.db import Connection

from credential_vault import repository as repo
from credential_vault.crypto import DataKey, Envelope
from credential_vault.datakeys import open_secret
from credential_vault.domain import errors
from credential_vault.domain.data import OAuth2ClientData, SecretData, token_metadata
from credential_vault.domain.findings import InvalidCredentialDataError
from credential_vault.domain.validation import ValidatedData, validate_data
from credential_vault.repository import CredentialRow, CredentialWrite, SecretRow


@dataclass(frozen=True, slots=True)
class Change:
    name: str
    validated: ValidatedData
    expires_at: datetime | None


Changer = Callable[[CredentialRow, dict[str, Any]], Change | None]
"""Given the locked row and its decrypted data, the change to store (None: nothing to do)."""


def validated(credential_type: CredentialType, raw: Any, prefix: str) -> ValidatedData:
    try:
        return validate_data(credential_type, raw)
    except InvalidCredentialDataError as exc:
        raise errors.invalid(exc.issues, prefix) from None


def token_change(tokens: dict[str, Any]) -> Changer:
    """A refresh: the new tokens over the current ones, only on an ``oauth2-token``."""

    def change(row: CredentialRow, current: dict[str, Any]) -> Change:
        if row.type is not CredentialType.OAUTH2_TOKEN:
            raise errors.not_a_token_credential()
        return Change(row.name, validated(row.type, {**current, **tokens}, "body"), row.expires_at)

    return change


def check_version(expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise errors.stale_version(current)


async def checked_change(
    conn: Connection, envelope: Envelope, secret: SecretRow, expected: int | None, change: Changer
) -> Change | None:
    """The change to store on a locked credential: If-Match, decrypt, apply ``change``,
    check its references. Every refusal is raised here, before anything is written."""
    check_version(expected, secret.row.version)
    update = change(secret.row, json.loads(open_secret(envelope, secret)))
    if update is not None:
        await check_references(conn, secret.row.org_id, update.validated.data)
    return update


async def check_references(conn: Connection, org_id: str, data: SecretData) -> None:
    """An mTLS OAuth client must name a certificate credential of the same org."""
    if isinstance(data, OAuth2ClientData) and data.mtls_credential_id is not None:
        found = await repo.credential_type_of(conn, org_id, data.mtls_credential_id)
        if found is not CredentialType.CERTIFICATE:
            raise errors.invalid_field(
                "body.data.mtlsCredentialId", "must name a certificate credential"
            )


def sealed_write(
    envelope: Envelope,
    key: DataKey,
    org_id: str,
    credential_id: UUID,
    version: int,
    change: Change,
) -> CredentialWrite:
    """Encrypt the data for (org, id, version) and derive the metadata kept in the clear."""
    data = change.validated.data
    sealed = envelope.seal_credential(key, org_id, credential_id, version, data.plaintext())
    token_expires_at, has_refresh_token = token_metadata(data)
    return CredentialWrite.sealed_as(
        sealed,
        name=change.name,
        fields_set=data.fields_set(),
        errors=change.validated.errors,
        expires_at=change.expires_at,
        access_token_expires_at=token_expires_at,
        has_refresh_token=has_refresh_token,
    )
