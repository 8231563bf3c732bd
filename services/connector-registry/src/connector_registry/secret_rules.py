"""Versori's merge rules for the OAuth client secret of a grant (seed 002).

- no ``credentialId``: a submitted secret creates a new vault credential (the old one,
  if any, is deleted once the change committed); no secret keeps the current one;
- ``credentialId`` of this very config: JSON Merge Patch of the vault credential;
- anything else (another config's id, an unknown id, another org): 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from plugboard_servicekit.errors import BadRequest, FieldError

from connector_registry.domain.schemes import OAuth2Scheme, SchemeModel
from connector_registry.secrets import ClientSecret, SecretStore


@dataclass
class SecretPlan:
    """The credential id the config will hold, and what to clean up afterwards."""

    credential_id: UUID | None
    created: UUID | None = None
    obsolete: list[UUID] = field(default_factory=list)


def _refuse(field_name: str, message: str) -> BadRequest:
    return BadRequest(message, errors=[FieldError(f"body.grant.{field_name}", message)])


async def plan_secret(
    store: SecretStore, org: str, label: str, scheme: SchemeModel, stored: UUID | None
) -> SecretPlan:
    """Apply the rules, calling the vault; run before the database transaction."""
    if not isinstance(scheme, OAuth2Scheme):
        return SecretPlan(None, obsolete=[stored] if stored else [])
    grant = scheme.grant
    if grant.organisation_id is not None and grant.organisation_id != org:
        raise _refuse("organisationId", "organisationId must be the caller's organisation")
    secret = grant.client_secret.get_secret_value() if grant.client_secret else None
    if grant.credential_id is None:
        if secret is None:
            return SecretPlan(stored)
        created = await store.create(org, label, ClientSecret(grant.client_id, secret))
        return SecretPlan(created, created=created, obsolete=[stored] if stored else [])
    if grant.credential_id != stored:
        raise _refuse("credentialId", "credentialId is not this config's client credential")
    if secret is not None or grant.client_id is not None:
        await store.merge(org, grant.credential_id, ClientSecret(grant.client_id, secret))
    return SecretPlan(stored)
