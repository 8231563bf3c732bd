"""Routes of ``/v1/connectors``: connectors, versions and auth scheme configs.

Custom methods use Google's ``:verb`` form (``/v1/connectors:from-provider``,
``.../versions/{id}:publish``). Path ids are parsed in the route: a non-UUID id
answers 404 like another org's id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from connector_registry.api.deps import (
    NO_NUL,
    ConnectorsRead,
    ConnectorsWrite,
    next_token,
    parse_id,
    path_text,
    uuid_cursor,
)
from connector_registry.api.schemas import ConnectorOut, ConnectorPage, VersionOut, config_out
from connector_registry.bodylimit import SmallBodyRoute
from connector_registry.domain.schemes import AuthSchemeConfig
from connector_registry.models import ConnectorIn, ConnectorPatch, In, VersionIn, VersionPatch

router = APIRouter(prefix="/v1", tags=["connectors"], route_class=SmallBodyRoute)
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=200)]
PageToken = Annotated[str | None, Query(alias="pageToken", max_length=2048)]
Filter = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
ConfigId = Annotated[str, Field(min_length=1, max_length=200)]


class FromProviderIn(In):
    provider: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    inputs: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]] = (
        Field(default_factory=dict, max_length=50)
    )
    base_url: str | None = Field(default=None, max_length=2048)


def _out(call: Any, view: Any) -> ConnectorOut:
    return ConnectorOut.of(view, dev=call.deps.settings.dev_mode)


@router.post("/connectors:from-provider", status_code=201)
async def create_from_provider(body: FromProviderIn, call: ConnectorsWrite) -> ConnectorOut:
    catalogue = call.deps.catalogue
    view = await catalogue.from_provider(
        call.caller.org, body.name, body.provider, dict(body.inputs), body.base_url
    )
    return _out(call, view)


@router.post("/connectors", status_code=201)
async def create_connector(body: ConnectorIn, call: ConnectorsWrite) -> ConnectorOut:
    return _out(call, await call.deps.connectors.create(call.caller.org, body))


@router.get("/connectors")
async def list_connectors(
    call: ConnectorsRead,
    name: Filter = None,
    protocol: Filter = None,
    tag: Filter = None,
    page_size: PageSize = 50,
    page_token: PageToken = None,
) -> ConnectorPage:
    views, following = await call.deps.connectors.list(
        call.caller.org, uuid_cursor(page_token), (name, protocol, tag), page_size
    )
    return ConnectorPage(
        items=[_out(call, v) for v in views], next_page_token=next_token(following)
    )


@router.get("/connectors/{connector_id}", response_model=ConnectorOut)
async def get_connector(connector_id: str, call: ConnectorsRead) -> Response:
    """The hot read: serialised once here (FastAPI would validate the model again)."""
    body = await call.deps.connectors.get_rendered(
        call.caller.org,
        parse_id(connector_id),
        lambda view: _out(call, view).model_dump_json().encode(),
    )
    return Response(body, media_type="application/json")


@router.patch("/connectors/{connector_id}")
async def patch_connector(
    connector_id: str, body: ConnectorPatch, call: ConnectorsWrite
) -> ConnectorOut:
    view = await call.deps.connectors.patch(call.caller.org, parse_id(connector_id), body)
    return _out(call, view)


@router.delete("/connectors/{connector_id}", status_code=204)
async def delete_connector(
    connector_id: str, call: ConnectorsWrite, force: Annotated[bool, Query()] = False
) -> Response:
    await call.deps.connectors.delete(call.caller.org, parse_id(connector_id), force=force)
    return Response(status_code=204)


# --- versions ---------------------------------------------------------------------------


@router.post("/connectors/{connector_id}/versions", status_code=201)
async def create_version(connector_id: str, body: VersionIn, call: ConnectorsWrite) -> VersionOut:
    row = await call.deps.versions.create(call.caller.org, parse_id(connector_id), body)
    return VersionOut.of(row, None)


@router.patch("/connectors/{connector_id}/versions/{version_id}")
async def patch_version(
    connector_id: str, version_id: str, body: VersionPatch, call: ConnectorsWrite
) -> VersionOut:
    cid, vid = parse_id(connector_id), parse_id(version_id, "version")
    return VersionOut.of(await call.deps.versions.patch(call.caller.org, cid, vid, body), None)


@router.post("/connectors/{connector_id}/versions/{version_id}:publish")
async def publish_version(connector_id: str, version_id: str, call: ConnectorsWrite) -> VersionOut:
    cid, vid = parse_id(connector_id), parse_id(version_id, "version")
    row = await call.deps.versions.publish(call.caller.org, cid, vid)
    return VersionOut.of(row, row["id"])


@router.post("/connectors/{connector_id}/versions/{version_id}:unpublish")
async def unpublish_version(
    connector_id: str, version_id: str, call: ConnectorsWrite
) -> VersionOut:
    cid, vid = parse_id(connector_id), parse_id(version_id, "version")
    return VersionOut.of(await call.deps.versions.unpublish(call.caller.org, cid, vid), None)


@router.delete("/connectors/{connector_id}/versions/{version_id}", status_code=204)
async def delete_version(connector_id: str, version_id: str, call: ConnectorsWrite) -> Response:
    cid, vid = parse_id(connector_id), parse_id(version_id, "version")
    await call.deps.versions.delete(call.caller.org, cid, vid)
    return Response(status_code=204)


# --- auth scheme configs ----------------------------------------------------------------


@router.put(
    "/connectors/{connector_id}/auth-scheme-configs/{config_id}", response_model_exclude_none=True
)
async def put_config(
    connector_id: str, config_id: str, body: AuthSchemeConfig, call: ConnectorsWrite,
    response: Response,
) -> AuthSchemeConfig:  # fmt: skip
    cid = parse_id(connector_id)
    row, created = await call.deps.connectors.put_config(
        call.caller.org, cid, config_id[:200], body
    )
    response.status_code = 201 if created else 200
    _, certificate = await call.deps.connectors.get_config(call.caller.org, cid, row.id)
    return config_out(row, dev=call.deps.settings.dev_mode, certificate=certificate)


@router.get(
    "/connectors/{connector_id}/auth-scheme-configs/{config_id}", response_model_exclude_none=True
)
async def get_config(connector_id: str, config_id: str, call: ConnectorsRead) -> AuthSchemeConfig:
    cid, config_id = parse_id(connector_id), path_text(config_id, "auth scheme config")
    row, certificate = await call.deps.connectors.get_config(call.caller.org, cid, config_id)
    return config_out(row, dev=call.deps.settings.dev_mode, certificate=certificate)


@router.delete("/connectors/{connector_id}/auth-scheme-configs/{config_id}", status_code=204)
async def delete_config(connector_id: str, config_id: str, call: ConnectorsWrite) -> Response:
    cid, config_id = parse_id(connector_id), path_text(config_id, "auth scheme config")
    await call.deps.connectors.delete_config(call.caller.org, cid, config_id)
    return Response(status_code=204)
