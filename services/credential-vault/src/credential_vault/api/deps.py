"""What a vault route depends on: one flat ``Call[VaultDeps]`` per route, by scope.

Path ids, ``If-Match`` and the audit context are read by plain helpers inside
the route (issue 12: no nested dependencies to resolve per request).
"""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

import structlog
from plugboard_servicekit.http import Call, authorize

from credential_vault.domain import errors
from credential_vault.repository import Audit
from credential_vault.service import VaultDeps

ReadCall = Annotated[Call[VaultDeps], authorize("credentials:read")]
WriteCall = Annotated[Call[VaultDeps], authorize("credentials:write")]
RevealCall = Annotated[Call[VaultDeps], authorize("credentials:reveal")]
RefreshCall = Annotated[Call[VaultDeps], authorize("credentials:refresh")]
RevokeCall = Annotated[Call[VaultDeps], authorize("credentials:revoke", services={"oauth-broker"})]
"""The OAuth broker's RFC 7009 hand-off (``:take-revocation``): a scope of its own, so
a token that may reveal or refresh cannot also drain deleted credentials' tokens, and
of the trusted services only the broker (which revokes at providers) may call it."""

_VERSION_TAG = re.compile(r'(?:W/)?"?([0-9]{1,9})"?')
"""``3``, ``"3"`` or ``W/"3"``; ASCII digits only (``²`` is a digit to ``str.isdigit``)
and at most nine of them, so ``int`` can neither fail nor be fed 5,000 digits."""


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
"""Visible ASCII, 1-255 characters: the key is stored, so it is bounded and printable."""

IDEMPOTENCY_KEY_HEADER = {"parameters": [{
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    "description": "Repeats of a take with the same key within 300 s answer the same tokens.",
}]}  # fmt: skip
"""``Idempotency-Key`` is read in the route, so the document names it here."""


def idempotency_key(call: Call[VaultDeps]) -> str | None:
    """The ``Idempotency-Key`` header; 422 naming it when it is not a printable token."""
    value = call.request.headers.get("idempotency-key")
    if value is None:
        return None
    if _IDEMPOTENCY_KEY.fullmatch(value) is None:
        raise errors.invalid_field(
            "header.Idempotency-Key", "must be 1-255 visible ASCII characters"
        )
    return value


def parse_id(raw: str) -> UUID:
    """Anything that is not a UUID cannot name a credential: 404, like a foreign id."""
    try:
        return UUID(raw)
    except ValueError:
        raise errors.not_found() from None


def if_match(call: Call[VaultDeps]) -> int | None:
    """The version ``If-Match`` names; ``*`` or absent: no condition."""
    return parse_version_tag(call.request.headers.get("if-match"))


def parse_version_tag(value: str | None) -> int | None:
    """``If-Match`` as a credential version; a 412 problem for anything else."""
    if value is None or value.strip() == "*":
        return None
    match = _VERSION_TAG.fullmatch(value.strip())
    if match is None:
        raise errors.bad_if_match()
    return int(match.group(1))


def required_if_match(call: Call[VaultDeps]) -> int:
    version = if_match(call)
    if version is None:
        raise errors.if_match_required()
    return version


def audit_of(call: Call[VaultDeps]) -> Audit:
    return audit_for(call.caller.sub)


def audit_for(actor: str) -> Audit:
    """The actor, with the request and trace ids the request middleware bound for the
    logs: an audit row leads to the access log line and the trace."""
    bound = structlog.contextvars.get_contextvars()
    return Audit(actor, bound.get("request_id"), bound.get("trace_id"))
