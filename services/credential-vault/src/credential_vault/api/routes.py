"""HTTP routes of ``/v1/credentials``: parse, authorise, call the service, shape the reply.

Each route has one dependency, its ``Call`` (``api.deps``); ids, ``If-Match`` and
the merge-patch body are parsed inside the route. Custom methods use Google's
``{id}:verb`` form. Starlette matches ``{credential_id}`` as ``[^/]+``, so
``GET /v1/credentials/x:reveal`` reaches the GET route with an id that is no UUID
(404) and ``POST /v1/credentials/{id}:reveal`` matches only the reveal route;
tests pin both. The custom methods are declared first: the hot ``:reveal`` path
then matches without trying the other routes.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError
from plugboard_contracts.enums import CredentialType
from plugboard_servicekit.errors import BadRequest, FieldError
from plugboard_servicekit.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
)
from pydantic import ValidationError

from credential_vault.api.audit import AuditedRoute
from credential_vault.api.deps import (
    IDEMPOTENCY_KEY_HEADER,
    ReadCall,
    RefreshCall,
    RevealCall,
    RevokeCall,
    WriteCall,
    audit_of,
    idempotency_key,
    if_match,
    parse_id,
    required_if_match,
)
from credential_vault.api.schemas import (
    BatchReplacedItem,
    BatchReplacedOut,
    BatchReplaceIn,
    BatchRevealedOut,
    BatchRevealIn,
    CredentialCreateIn,
    CredentialOut,
    CredentialPage,
    CredentialPatchIn,
    RevealedCredentialOut,
    RevocationOut,
    batch_revealed_json,
    revealed_json,
)
from credential_vault.domain.data import OAuth2TokenData
from credential_vault.domain.text import PlainText
from credential_vault.service import (
    CredentialPatch,
    CredentialView,
    NewCredential,
    TokenReplacement,
)

MERGE_PATCH = "application/merge-patch+json"
NO_STORE = {"Cache-Control": "no-store"}
"""A revealed secret must not stay in any cache between the vault and its caller."""

router = APIRouter(prefix="/v1/credentials", tags=["credentials"], route_class=AuditedRoute)


def _if_match_header(required: bool) -> dict[str, Any]:
    """``If-Match`` is read in the route (no dependency), so the document names it here."""
    schema = {"type": "string", "pattern": '^(\\*|(W/)?"?[0-9]{1,9}"?)$'}
    description = "The credential version the change applies to (its ETag)."
    header = {"name": "If-Match", "in": "header", "required": required, "schema": schema}
    return {"parameters": [header | {"description": description}]}


def _single(view: CredentialView, response: Response) -> CredentialOut:
    response.headers["ETag"] = f'"{view.row.version}"'
    return CredentialOut.of(view)


@router.post(":batch-reveal", response_model=BatchRevealedOut)
async def batch_reveal_credentials(body: BatchRevealIn, call: RevealCall) -> Response:
    """Many reveals in one call (the OAuth broker's refresh scheduler), each audited."""
    ids = list(dict.fromkeys(body.ids))
    revealed = await call.deps.credentials.reveal_many(call.caller.org, audit_of(call), ids)
    body_json = batch_revealed_json(revealed, ids)
    return Response(body_json, media_type="application/json", headers=NO_STORE)


@router.post(":batch-replace-token")
async def batch_replace_tokens(body: BatchReplaceIn, call: RefreshCall) -> BatchReplacedOut:
    """Many ``:replace-token`` calls in one (the OAuth broker's refreshes), each its own
    compare-and-set on ``ifMatch``; one item's refusal leaves the others written."""
    items = [
        TokenReplacement(
            item.id, item.if_match, item.data.model_dump(mode="json", exclude_unset=True)
        )
        for item in body.items
    ]
    outcomes = await call.deps.credentials.replace_tokens(call.caller.org, audit_of(call), items)
    return BatchReplacedOut(items=[
        BatchReplacedItem(id=o.credential_id, status=o.status, version=o.version,
                          detail=None if o.refused is None else o.refused.detail)
        for o in outcomes
    ])  # fmt: skip


@router.post("/{credential_id}:reveal", response_model=RevealedCredentialOut)
async def reveal_credential(credential_id: str, call: RevealCall) -> Response:
    cid = parse_id(credential_id)
    row, plaintext = await call.deps.credentials.reveal(call.caller.org, audit_of(call), cid)
    return Response(revealed_json(row, plaintext), media_type="application/json", headers=NO_STORE)


@router.post("/{credential_id}:replace-token", openapi_extra=_if_match_header(True))
async def replace_token(
    credential_id: str, body: OAuth2TokenData, call: RefreshCall, response: Response
) -> CredentialOut:
    cid, expected = parse_id(credential_id), required_if_match(call)
    tokens = body.model_dump(mode="json", exclude_unset=True)
    credentials = call.deps.credentials
    view = await credentials.replace_token(call.caller.org, audit_of(call), cid, tokens, expected)
    return _single(view, response)


@router.post(
    "/{credential_id}:take-revocation",
    response_model=RevocationOut,
    openapi_extra=IDEMPOTENCY_KEY_HEADER,
)
async def take_revocation(credential_id: str, call: RevokeCall) -> Response:
    """For the OAuth broker: the tokens of a deleted oauth2-token credential, to revoke
    at the provider (RFC 7009). Single use: the hand-off is deleted as it is answered
    (404 after that, after ``VAULT_REVOCATION_HANDOFF_SECONDS``, or for another org).
    With an ``Idempotency-Key`` it is kept, marked taken, and a repeat with the same key
    within 300 s answers the same tokens (a retry after a lost answer); any other take
    is 404."""
    cid, deps, key = parse_id(credential_id), call.deps, idempotency_key(call)
    window = deps.settings.revocation_handoff_seconds
    audit = audit_of(call)
    tokens = await deps.credentials.take_revocation(call.caller.org, audit, cid, window, key=key)
    body = RevocationOut.model_validate(tokens)
    return Response(body.model_dump_json(), media_type="application/json", headers=NO_STORE)


@router.post("", status_code=201)
async def create_credential(
    body: CredentialCreateIn, call: WriteCall, response: Response
) -> CredentialOut:
    new = NewCredential(body.name, body.type, body.data, body.expires_at, body.provider_app_id)
    view = await call.deps.credentials.create(call.caller.org, audit_of(call), new)
    response.headers["Location"] = f"{router.prefix}/{view.row.id}"
    return _single(view, response)


@router.get("")
async def list_credentials(
    call: ReadCall,
    credential_type: Annotated[CredentialType | None, Query(alias="type")] = None,
    name: Annotated[PlainText | None, Query(max_length=200)] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    page_token: Annotated[str | None, Query(alias="pageToken", max_length=2048)] = None,
) -> CredentialPage:
    after = _cursor(page_token)
    views, following = await call.deps.credentials.list(
        call.caller.org, credential_type=credential_type, name=name, after=after, limit=page_size
    )
    token = None if following is None else encode_page_token({"after": str(following)})
    return CredentialPage(items=[CredentialOut.of(view) for view in views], next_page_token=token)


def _cursor(page_token: str | None) -> UUID | None:
    if not page_token:
        return None
    try:
        return UUID(str(decode_page_token(page_token)["after"]))
    except (KeyError, ValueError):
        raise BadRequest(
            "invalid pageToken", errors=[FieldError("query.pageToken", "invalid")]
        ) from None


@router.get("/{credential_id}")
async def get_credential(credential_id: str, call: ReadCall, response: Response) -> CredentialOut:
    view = await call.deps.credentials.get(call.caller.org, parse_id(credential_id))
    return _single(view, response)


@router.patch(
    "/{credential_id}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {MERGE_PATCH: {"schema": CredentialPatchIn.model_json_schema()}},
        },
        **_if_match_header(False),
    },
)
async def patch_credential(
    credential_id: str, call: WriteCall, response: Response
) -> CredentialOut:
    """JSON Merge Patch; the body is read here so the media type is checked first."""
    cid, expected = parse_id(credential_id), if_match(call)
    body = _merge_patch(call.request.headers.get("content-type", ""), await call.request.body())
    patch = CredentialPatch(frozenset(body.model_fields_set), body.name, body.data, body.expires_at)
    view = await call.deps.credentials.patch(call.caller.org, audit_of(call), cid, patch, expected)
    return _single(view, response)


def _merge_patch(content_type: str, raw: bytes) -> CredentialPatchIn:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in (MERGE_PATCH, "application/json"):
        raise _UnsupportedMediaType()
    try:
        document: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    try:
        return CredentialPatchIn.model_validate(document)
    except ValidationError as exc:
        issues = exc.errors(include_input=False, include_url=False)
        raise RequestValidationError(
            [{**issue, "loc": ("body", *issue["loc"])} for issue in issues]
        ) from None


class _UnsupportedMediaType(BadRequest):
    status = 415
    title = "Unsupported Media Type"

    def __init__(self) -> None:
        super().__init__(f"Send {MERGE_PATCH}.")


@router.delete("/{credential_id}", status_code=204, openapi_extra=_if_match_header(False))
async def delete_credential(credential_id: str, call: WriteCall) -> Response:
    cid, expected = parse_id(credential_id), if_match(call)
    await call.deps.credentials.delete(call.caller.org, audit_of(call), cid, expected)
    return Response(status_code=204)
