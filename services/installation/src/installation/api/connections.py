"""Routes of connections and installations (``/v1/projects/{p}/...``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from installation.api.deps import (
    ConnectionsRead,
    ConnectionsWrite,
    InstallationsRead,
    InstallationsWrite,
    next_page,
    page_after,
    parse_id,
)
from installation.api.schemas_connections import (
    ConnectionList,
    ConnectionOut,
    InstallationList,
    InstallationOut,
)
from installation.domain.requests import (
    ConfigIn,
    ConnectionRequest,
    ImportRequest,
    InstallationRequest,
)

router = APIRouter(prefix="/v1/projects/{project_id}", tags=["connections", "installations"])
_Filter = Query(min_length=1, max_length=200)
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=200)]
PageToken = Annotated[str | None, Query(alias="pageToken", max_length=2048)]
_INSTALLATIONS = "/integrations/{integration_id}/installations"


@router.post("/connections", status_code=201)
async def create_connection(
    project_id: str, body: ConnectionRequest, call: ConnectionsWrite
) -> ConnectionOut:
    pid = parse_id(project_id, "project")
    return ConnectionOut.of(await call.deps.connections.create(call.caller, pid, body))


@router.get("/connections")
async def list_connections(
    project_id: str,
    call: ConnectionsRead,
    provider: Annotated[str | None, _Filter] = None,
    group_ref: Annotated[str | None, Query(alias="groupRef", min_length=1, max_length=200)] = None,
    consumer_ref: Annotated[
        str | None, Query(alias="consumerRef", min_length=1, max_length=200)
    ] = None,
    page_size: PageSize = 50,
    page_token: PageToken = None,
) -> ConnectionList:
    pid = parse_id(project_id, "project")
    filters: list[str | None] = [provider, group_ref, consumer_ref]
    rows = await call.deps.connections.list(
        call.caller, pid, filters, page_after(page_token), page_size + 1
    )
    return ConnectionList(
        connections=[ConnectionOut.of(r) for r in rows[:page_size]],
        next_page_token=next_page(rows, page_size),
    )


@router.get("/connections/{connection_id}")
async def get_connection(
    project_id: str, connection_id: str, call: ConnectionsRead
) -> ConnectionOut:
    pid, cid = parse_id(project_id, "project"), parse_id(connection_id, "connection")
    return ConnectionOut.of(await call.deps.connections.get(call.caller, pid, cid))


@router.delete("/connections/{connection_id}", status_code=204)
async def delete_connection(
    project_id: str, connection_id: str, call: ConnectionsWrite
) -> Response:
    pid, cid = parse_id(project_id, "project"), parse_id(connection_id, "connection")
    await call.deps.connections.delete(call.caller, pid, cid)
    return Response(status_code=204)


@router.post(f"{_INSTALLATIONS}:import", status_code=201)
async def import_installation(
    project_id: str, integration_id: str, body: ImportRequest, call: InstallationsWrite
) -> InstallationOut:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    installation, connection = await call.deps.installations.import_grant(
        call.caller, pid, iid, body
    )
    return InstallationOut.of(installation, connection)


@router.post(_INSTALLATIONS, status_code=201)
async def create_installation(
    project_id: str, integration_id: str, body: InstallationRequest, call: InstallationsWrite
) -> InstallationOut:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    return InstallationOut.of(await call.deps.installations.create(call.caller, pid, iid, body))


@router.get(_INSTALLATIONS)
async def list_installations(
    project_id: str,
    integration_id: str,
    call: InstallationsRead,
    group_ref: Annotated[str | None, Query(alias="groupRef", min_length=1, max_length=200)] = None,
    page_size: PageSize = 50,
    page_token: PageToken = None,
) -> InstallationList:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    rows = await call.deps.installations.list(
        call.caller, pid, iid, group_ref, page_after(page_token), page_size + 1
    )
    return InstallationList(
        installations=[InstallationOut.of(r) for r in rows[:page_size]],
        next_page_token=next_page(rows, page_size),
    )


@router.get(_INSTALLATIONS + "/{installation_id}")
async def get_installation(
    project_id: str, integration_id: str, installation_id: str, call: InstallationsRead
) -> InstallationOut:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    inst = parse_id(installation_id, "installation")
    return InstallationOut.of(await call.deps.installations.get(call.caller, pid, iid, inst))


@router.patch(_INSTALLATIONS + "/{installation_id}")
async def update_installation(
    project_id: str,
    integration_id: str,
    installation_id: str,
    body: ConfigIn,
    call: InstallationsWrite,
) -> InstallationOut:
    """A new config version (``{revisionId?, content}``); the installation keeps its history."""
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    inst = parse_id(installation_id, "installation")
    row = await call.deps.installations.update_config(call.caller, pid, iid, inst, body)
    return InstallationOut.of(row)


@router.delete(_INSTALLATIONS + "/{installation_id}", status_code=204)
async def delete_installation(
    project_id: str, integration_id: str, installation_id: str, call: InstallationsWrite
) -> Response:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    inst = parse_id(installation_id, "installation")
    await call.deps.installations.delete(call.caller, pid, iid, inst)
    return Response(status_code=204)
