"""Turning untrusted ``data`` into a typed, checked credential payload.

Pydantic errors are translated into field issues relative to ``data`` (the
union tag pydantic adds to the location is dropped), using pydantic's message
texts, which describe the expected shape and never echo the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugboard_contracts.enums import CredentialType
from pydantic import TypeAdapter, ValidationError

from credential_vault.domain.data import CredentialData, SecretData
from credential_vault.domain.findings import FieldIssue, InvalidCredentialDataError
from credential_vault.domain.text import NOT_UNICODE, bad_unicode

_ADAPTER: TypeAdapter[SecretData] = TypeAdapter(CredentialData)


@dataclass(frozen=True, slots=True)
class ValidatedData:
    """Data that fits its type, plus the soft ``errors`` found ([] = valid)."""

    data: SecretData
    errors: list[str]


def _issue(error: Any) -> FieldIssue:
    location = [str(part) for part in error["loc"][1:]]  # [0] is the union tag
    return FieldIssue(".".join(location), error["msg"])


def parse_data(credential_type: CredentialType, raw: Any) -> SecretData:
    """Check the shape of ``raw`` for its type; raises ``InvalidCredentialDataError``."""
    if not isinstance(raw, dict):
        raise InvalidCredentialDataError([FieldIssue("", "must be an object")])
    broken = sorted(set(bad_unicode(raw)))
    if broken:
        raise InvalidCredentialDataError([FieldIssue(path, NOT_UNICODE) for path in broken])
    if "type" in raw:
        raise InvalidCredentialDataError([FieldIssue("type", "Extra inputs are not permitted")])
    try:
        return _ADAPTER.validate_python({**raw, "type": credential_type})
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        raise InvalidCredentialDataError([_issue(error) for error in errors]) from None


def validate_data(credential_type: CredentialType, raw: Any) -> ValidatedData:
    """Shape first, then the type's own checks (PEM, key kinds); both name the field."""
    data = parse_data(credential_type, raw)
    findings = data.check()
    if findings.issues:
        raise InvalidCredentialDataError(findings.issues)
    return ValidatedData(data, findings.errors)
