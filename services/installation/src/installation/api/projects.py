"""Routes of projects, builders, API keys, the token exchange and the JWKS document,
integrations with their revisions, groups and consumers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from plugboard_servicekit.http import deps_of

from installation.api.deps import AnyCaller, ProjectsRead, ProjectsWrite, parse_id
from installation.api.schemas import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyList,
    ApiKeyOut,
    BuilderInfo,
    ConsumerIn,
    ConsumerList,
    ConsumerOut,
    GroupIn,
    GroupList,
    GroupOut,
    IntegrationIn,
    IntegrationList,
    IntegrationOut,
    ProjectIn,
    ProjectList,
    ProjectOut,
    RevisionOut,
    TokenIn,
    TokenOut,
)
from installation.deps import InstallationDeps
from installation.domain.specs import RevisionSpec

router = APIRouter(tags=["projects"])
NO_STORE = {"Cache-Control": "no-store"}


@router.post("/v1/auth/token")
async def token(body: TokenIn, request: Request, response: Response) -> TokenOut:
    """Exchange an API key for a short-lived platform token (no bearer needed)."""
    deps: InstallationDeps = deps_of(request)
    issued = await deps.projects.token(body.api_key)
    response.headers.update(NO_STORE)
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    """The public key platform tokens are verified with (RFC 7517)."""
    deps: InstallationDeps = deps_of(request)
    return deps.jwks


@router.get("/v1/builders/me", response_model_exclude_none=True)
async def builder_me(call: AnyCaller) -> BuilderInfo:
    return BuilderInfo.of(*await call.deps.projects.me(call.caller))


@router.post("/v1/projects", status_code=201)
async def create_project(body: ProjectIn, call: ProjectsWrite) -> ProjectOut:
    return ProjectOut.of(await call.deps.projects.create(call.caller, body.name, body.app_name))


@router.get("/v1/projects")
async def list_projects(call: ProjectsRead) -> ProjectList:
    rows = await call.deps.projects.list(call.caller)
    return ProjectList(projects=[ProjectOut.of(r) for r in rows])


@router.get("/v1/projects/{project_id}")
async def get_project(project_id: str, call: ProjectsRead) -> ProjectOut:
    pid = parse_id(project_id, "project")
    return ProjectOut.of(await call.deps.projects.project(call.caller, pid))


@router.post("/v1/projects/{project_id}/api-keys", status_code=201)
async def create_key(
    project_id: str, body: ApiKeyIn, call: ProjectsWrite, response: Response
) -> ApiKeyCreatedOut:
    pid = parse_id(project_id, "project")
    made = await call.deps.projects.create_key(call.caller, pid, body.label, body.scopes)
    response.headers.update(NO_STORE)
    return ApiKeyCreatedOut(**ApiKeyOut.of(made.row).model_dump(), key=made.key)


@router.get("/v1/projects/{project_id}/api-keys")
async def list_keys(project_id: str, call: ProjectsRead) -> ApiKeyList:
    rows = await call.deps.projects.list_keys(call.caller, parse_id(project_id, "project"))
    return ApiKeyList(api_keys=[ApiKeyOut.of(r) for r in rows])


@router.delete("/v1/projects/{project_id}/api-keys/{key_id}", status_code=204)
async def revoke_key(project_id: str, key_id: str, call: ProjectsWrite) -> Response:
    pid, kid = parse_id(project_id, "project"), parse_id(key_id, "API key")
    await call.deps.projects.revoke_key(call.caller, pid, kid)
    return Response(status_code=204)


@router.post("/v1/projects/{project_id}/integrations", status_code=201)
async def create_integration(
    project_id: str, body: IntegrationIn, call: ProjectsWrite
) -> IntegrationOut:
    from plugboard_servicekit.errors import FieldError, Invalid

    if (body.provider is None) == (body.connector_id is None):
        raise Invalid(
            "Name exactly one of provider and connectorId.",
            errors=[FieldError("body.provider", "or connectorId, exactly one")],
        )
    pid = parse_id(project_id, "project")
    row = await call.deps.integrations.create(
        call.caller, pid, body.name, body.provider, body.connector_id
    )
    return IntegrationOut.of(row)


@router.get("/v1/projects/{project_id}/integrations")
async def list_integrations(project_id: str, call: ProjectsRead) -> IntegrationList:
    rows = await call.deps.integrations.list(call.caller, parse_id(project_id, "project"))
    return IntegrationList(integrations=[IntegrationOut.of(r) for r in rows])


@router.get("/v1/projects/{project_id}/integrations/{integration_id}")
async def get_integration(
    project_id: str, integration_id: str, call: ProjectsRead
) -> IntegrationOut:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    return IntegrationOut.of(await call.deps.integrations.get(call.caller, pid, iid))


@router.post("/v1/projects/{project_id}/integrations/{integration_id}/revisions", status_code=201)
async def create_revision(
    project_id: str, integration_id: str, body: RevisionSpec, call: ProjectsWrite
) -> RevisionOut:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    return RevisionOut.of(await call.deps.integrations.add_revision(call.caller, pid, iid, body))


@router.get("/v1/projects/{project_id}/integrations/{integration_id}/revisions/{revision_id}")
async def get_revision(
    project_id: str, integration_id: str, revision_id: str, call: ProjectsRead
) -> RevisionOut:
    pid, iid = parse_id(project_id, "project"), parse_id(integration_id, "integration")
    rid = parse_id(revision_id, "revision")
    return RevisionOut.of(await call.deps.integrations.revision(call.caller, pid, iid, rid))


@router.post("/v1/projects/{project_id}/groups", status_code=201)
async def put_group(project_id: str, body: GroupIn, call: ProjectsWrite) -> GroupOut:
    pid = parse_id(project_id, "project")
    row = await call.deps.integrations.put_group(call.caller, pid, body.group_ref, body.group_name)
    return GroupOut.of(row)


@router.get("/v1/projects/{project_id}/groups")
async def list_groups(project_id: str, call: ProjectsRead) -> GroupList:
    rows = await call.deps.integrations.groups(call.caller, parse_id(project_id, "project"))
    return GroupList(groups=[GroupOut.of(r) for r in rows])


@router.post("/v1/projects/{project_id}/consumers", status_code=201)
async def put_consumer(project_id: str, body: ConsumerIn, call: ProjectsWrite) -> ConsumerOut:
    pid = parse_id(project_id, "project")
    row = await call.deps.integrations.put_consumer(
        call.caller, pid, body.consumer_ref, body.consumer_name
    )
    return ConsumerOut.of(row)


@router.get("/v1/projects/{project_id}/consumers")
async def list_consumers(project_id: str, call: ProjectsRead) -> ConsumerList:
    rows = await call.deps.integrations.consumers(call.caller, parse_id(project_id, "project"))
    return ConsumerList(consumers=[ConsumerOut.of(r) for r in rows])
