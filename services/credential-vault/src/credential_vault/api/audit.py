"""Auditing refused and failed attempts (issue 8 #13), in one place for every route.

A successful action is audited by the statement that performs it. An attempt
that is refused (403 missing scope, 404 on an id that is not the caller's) or
that fails (the stored ciphertext does not authenticate) changes nothing, so no use
case writes its row; the route class below does, after the refusal, in its own
autocommit statement, then lets the error answer as it would have. 401s are not
audited: without a verified token there is no org to file them under.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.routing import APIRoute
from plugboard_servicekit import http
from plugboard_servicekit.errors import DomainError
from plugboard_servicekit.logging import get_logger

from credential_vault.api.deps import audit_for
from credential_vault.service import VaultDeps

log = get_logger(__name__)

ACTIONS = {
    "create_credential": "create",
    "list_credentials": "list",
    "get_credential": "read",
    "patch_credential": "update",
    "delete_credential": "delete",
    "reveal_credential": "reveal",
    "batch_reveal_credentials": "reveal",
    "replace_token": "refresh",
    "batch_replace_tokens": "refresh",
    "take_revocation": "take_revocation",
}
_OUTCOMES = {403: "denied", 404: "not_found", 500: "failed"}
"""500 is a stored ciphertext that does not authenticate: the only domain error that
is the vault's own failure, so it is matched by status, not by class."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _credential_id(request: Request) -> UUID | None:
    try:
        return UUID(str(request.path_params.get("credential_id")))
    except ValueError:
        return None


async def record_refusal(request: Request, action: str, outcome: str) -> None:
    """File the attempt under the caller's org; never masks the original error."""
    try:
        caller = http.context_of(request.app).verifier.verify(http.bearer_token(request.scope))
        deps: VaultDeps = http.deps_of(request)
        await deps.credentials.record_attempt(
            caller.org,
            audit_for(caller.sub),
            action=action,
            credential_id=_credential_id(request),
            outcome=outcome,
        )
    except Exception as exc:  # noqa: BLE001 - the refusal itself must still answer
        log.warning("audit_refusal_failed", action=action, error=type(exc).__name__)


class AuditedRoute(APIRoute):
    """An ``APIRoute`` whose refused and failed calls leave an audit row."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        action = ACTIONS[self.name]

        async def audited(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as exc:
                outcome = _OUTCOMES.get(exc.status)
                if outcome is not None:
                    await record_refusal(request, action, outcome)
                raise

        return audited
