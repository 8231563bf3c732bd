"""HTTP routes of ``/v1/credentials``: parse, authorise, call the service, shape the reply.

Custom methods use Google's ``{id}:verb`` form. Starlette matches ``{credential_id}``
as ``[^/]+``, so ``GET /v1/credentials/x:reveal`` reaches the GET route with an id
that is no UUID (404) and ``POST /v1/credentials/{id}:reveal`` matches only the
reveal route; tests pin both. The custom methods are declared first: the hot
``:reveal`` path then matches without trying the other routes.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from plugboard_contracts.enums import CredentialType
from plugboard_servicekit.app import runtime_of
from plugboard_servicekit.auth import Caller, require_scopes
from plugboard_servicekit.pagination import PageParams, encode_page_token
from plugboard_servicekit.problems import ProblemError

from credential_vault.api.schemas import (
    CredentialCreateIn,
    CredentialOut,
    CredentialPage,
    CredentialPatchIn,
    RevealedCredentialOut,
    revealed_json,
)
from credential_vault.domain.data import OAuth2TokenData
from credential_vault.service import (
    CredentialPatch,
    CredentialService,
    CredentialView,
    NewCredential,
    not_found,
)

SERVICE_STATE = "credential_service"
MERGE_PATCH = "application/merge-patch+json"

router = APIRouter(prefix="/v1/credentials", tags=["credentials"])

ReadCaller = Annotated[Caller, Depends(require_scopes("credentials:read"))]
WriteCaller = Annotated[Caller, Depends(require_scopes("credentials:write"))]
RevealCaller = Annotated[Caller, Depends(require_scopes("credentials:reveal"))]
RefreshCaller = Annotated[Caller, Depends(require_scopes("credentials:refresh"))]


async def _service(request: Request) -> CredentialService:
    """Async on purpose: FastAPI runs sync dependencies in a thread pool."""
    return runtime_of(request).state[SERVICE_STATE]


async def _credential_id(credential_id: str) -> UUID:
    """Anything that is not a UUID cannot name a credential: 404, like a foreign id."""
    try:
        return UUID(credential_id)
    except ValueError:
        raise not_found() from None


async def _if_match(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """``If-Match: 3``, ``"3"`` or ``W/"3"``; ``*`` or absent: no condition."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ProblemError(
            412,
            "Precondition Failed",
            "If-Match must carry a credential version.",
            errors=[{"field": "header.If-Match", "message": "must be a version number"}],
        )
    return int(tag)


async def _required_if_match(version: Annotated[int | None, Depends(_if_match)]) -> int:
    if version is None:
        raise ProblemError(
            428,
            "Precondition Required",
            "Send If-Match with the version the new tokens replace.",
            errors=[{"field": "header.If-Match", "message": "is required"}],
        )
    return version


async def _merge_patch_body(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (MERGE_PATCH, "application/json"):
        raise ProblemError(415, "Unsupported Media Type", f"Send {MERGE_PATCH}.")


Service = Annotated[CredentialService, Depends(_service)]
CredentialId = Annotated[UUID, Depends(_credential_id)]
IfMatch = Annotated[int | None, Depends(_if_match)]


def _single(view: CredentialView, response: Response) -> CredentialOut:
    response.headers["ETag"] = f'"{view.row.version}"'
    return CredentialOut.of(view)


@router.post("/{credential_id}:reveal", response_model=RevealedCredentialOut)
async def reveal_credential(
    credential_id: CredentialId, caller: RevealCaller, service: Service
) -> Response:
    row, plaintext = await service.reveal(caller, credential_id)
    return Response(revealed_json(row, plaintext), media_type="application/json")


@router.post("/{credential_id}:replace-token")
async def replace_token(
    credential_id: CredentialId,
    body: OAuth2TokenData,
    caller: RefreshCaller,
    service: Service,
    expected: Annotated[int, Depends(_required_if_match)],
    response: Response,
) -> CredentialOut:
    tokens = body.model_dump(mode="json", exclude_unset=True)
    return _single(await service.replace_token(caller, credential_id, tokens, expected), response)


@router.post("", status_code=201)
async def create_credential(
    body: CredentialCreateIn, caller: WriteCaller, service: Service, response: Response
) -> CredentialOut:
    new = NewCredential(body.name, body.type, body.data, body.expires_at, body.provider_app_id)
    view = await service.create(caller, new)
    response.headers["Location"] = f"{router.prefix}/{view.row.id}"
    return _single(view, response)


@router.get("")
async def list_credentials(
    caller: ReadCaller,
    service: Service,
    page: Annotated[PageParams, Depends()],
    credential_type: Annotated[CredentialType | None, Query(alias="type")] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> CredentialPage:
    after = _cursor(page.cursor)
    views, following = await service.list(
        caller.org, credential_type=credential_type, name=name, after=after, limit=page.page_size
    )
    token = None if following is None else encode_page_token({"after": str(following)})
    return CredentialPage(items=[CredentialOut.of(view) for view in views], next_page_token=token)


def _cursor(cursor: dict[str, Any] | None) -> UUID | None:
    if cursor is None:
        return None
    try:
        return UUID(str(cursor["after"]))
    except (KeyError, ValueError):
        raise ProblemError(400, "Bad Request", "invalid pageToken") from None


@router.get("/{credential_id}")
async def get_credential(
    credential_id: CredentialId, caller: ReadCaller, service: Service, response: Response
) -> CredentialOut:
    return _single(await service.get(caller.org, credential_id), response)


@router.patch(
    "/{credential_id}",
    dependencies=[Depends(_merge_patch_body)],
    openapi_extra={"requestBody": {"content": {MERGE_PATCH: {}}}},
)
async def patch_credential(
    credential_id: CredentialId,
    body: Annotated[CredentialPatchIn, Body(media_type=MERGE_PATCH)],
    caller: WriteCaller,
    service: Service,
    expected: IfMatch,
    response: Response,
) -> CredentialOut:
    patch = CredentialPatch(frozenset(body.model_fields_set), body.name, body.data, body.expires_at)
    return _single(await service.patch(caller, credential_id, patch, expected), response)


@router.delete("/{credential_id}", status_code=204)
async def delete_credential(
    credential_id: CredentialId, caller: WriteCaller, service: Service, expected: IfMatch
) -> Response:
    await service.delete(caller, credential_id, expected)
    return Response(status_code=204)
