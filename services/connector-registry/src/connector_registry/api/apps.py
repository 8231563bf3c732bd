"""Routes of ``/v1/provider-apps``: an org's OAuth client registrations (Ampersand).

``clientSecret`` is write-only: it goes to the vault, reads show
``clientSecretCredentialId``. Another org's app answers 404, which is how the OAuth
broker checks that a session's app belongs to the caller's org.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field, SecretStr

from connector_registry.api.deps import (
    NO_NUL,
    AppsRead,
    AppsWrite,
    next_token,
    parse_id,
    uuid_cursor,
)
from connector_registry.api.schemas import ProviderAppOut, ProviderAppPage
from connector_registry.bodylimit import SmallBodyRoute
from connector_registry.models import In
from connector_registry.service_apps import AppChange

router = APIRouter(prefix="/v1/provider-apps", tags=["provider-apps"], route_class=SmallBodyRoute)
Scope = Annotated[str, Field(min_length=1, max_length=200)]


class ProviderAppIn(In):
    provider: str = Field(min_length=1, max_length=100)
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: SecretStr | None = Field(default=None, max_length=4096)
    scopes: list[Scope] = Field(default_factory=list, max_length=500)
    external_ref: str | None = Field(default=None, max_length=500)

    def change(self) -> AppChange:
        fields = frozenset(self.model_fields_set)
        return AppChange(self.provider, self.client_id, self.client_secret, self.scopes,
                         self.external_ref, fields)  # fmt: skip


class ProviderAppPatch(In):
    provider: str | None = Field(default=None, min_length=1, max_length=100)
    client_id: str | None = Field(default=None, min_length=1, max_length=500)
    client_secret: SecretStr | None = Field(default=None, max_length=4096)
    scopes: list[Scope] | None = Field(default=None, max_length=500)
    external_ref: str | None = Field(default=None, max_length=500)

    def change(self) -> AppChange:
        fields = frozenset(self.model_fields_set)
        return AppChange(self.provider, self.client_id, self.client_secret, self.scopes,
                         self.external_ref, fields)  # fmt: skip


@router.post("", status_code=201)
async def create_app(body: ProviderAppIn, call: AppsWrite) -> ProviderAppOut:
    return ProviderAppOut.of(await call.deps.apps.create(call.caller.org, body.change()))


@router.get("")
async def list_apps(
    call: AppsRead,
    provider: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=200)] = 50,
    page_token: Annotated[str | None, Query(alias="pageToken", max_length=2048)] = None,
) -> ProviderAppPage:
    rows, following = await call.deps.apps.list(
        call.caller.org, uuid_cursor(page_token), provider, page_size
    )
    items = [ProviderAppOut.of(row) for row in rows]
    return ProviderAppPage(items=items, next_page_token=next_token(following))


@router.get("/{app_id}")
async def get_app(app_id: str, call: AppsRead) -> ProviderAppOut:
    row = await call.deps.apps.get(call.caller.org, parse_id(app_id, "provider app"))
    return ProviderAppOut.of(row)


@router.patch("/{app_id}")
async def patch_app(app_id: str, body: ProviderAppPatch, call: AppsWrite) -> ProviderAppOut:
    row = await call.deps.apps.update(
        call.caller.org, parse_id(app_id, "provider app"), body.change()
    )
    return ProviderAppOut.of(row)


@router.delete("/{app_id}", status_code=204)
async def delete_app(app_id: str, call: AppsWrite) -> Response:
    await call.deps.apps.delete(call.caller.org, parse_id(app_id, "provider app"))
    return Response(status_code=204)
