"""The vault's refusals as domain errors (``plugboard_servicekit.errors``).

Texts are fixed: they never quote an id's owner, a value or a key. The HTTP
layer maps them to problems in one place; nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence

from plugboard_servicekit.errors import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)

from credential_vault.domain.findings import FieldIssue


def not_found() -> NotFound:
    return NotFound("No such credential.")


def invalid(issues: Sequence[FieldIssue], prefix: str) -> Invalid:
    errors = [
        FieldError(f"{prefix}.{issue.field}" if issue.field else prefix, issue.message)
        for issue in issues
    ]
    return Invalid("The credential data does not fit its type; see errors.", errors=errors)


def invalid_field(field: str, message: str) -> Invalid:
    return Invalid("The request breaks a rule; see errors.", errors=[FieldError(field, message)])


def stale_version(current: int) -> PreconditionFailed:
    return PreconditionFailed(
        "If-Match does not match the credential's current version.", currentVersion=current
    )


def bad_if_match() -> PreconditionFailed:
    return PreconditionFailed(
        "If-Match must carry a credential version.",
        errors=[FieldError("header.If-Match", "must be a version number")],
    )


def if_match_required() -> PreconditionRequired:
    return PreconditionRequired(
        "Send If-Match with the version the new tokens replace.",
        errors=[FieldError("header.If-Match", "is required")],
    )


def not_a_token_credential() -> Conflict:
    return Conflict("Only oauth2-token credentials hold tokens.")
