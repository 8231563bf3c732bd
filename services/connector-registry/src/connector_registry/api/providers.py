"""Routes of the provider catalogue (``/v1/providers``) and of the two document imports.

The imports (``POST /v1/providers:import?format=nango`` and
``POST /v1/connectors:import-openapi``) are on their own router: their bodies are
streamed up to ``REGISTRY_IMPORT_MAX_BYTES`` into a spooled file, never whole in
memory; every other route keeps the small body limit (``bodylimit``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from connector_registry.api.deps import (
    NO_NUL,
    ConnectorsWrite,
    ProvidersRead,
    ProvidersWrite,
    cursor,
    next_token,
    path_text,
)
from connector_registry.api.schemas import (
    ConnectorOut,
    ImportedConnectorOut,
    ImportResultOut,
    ProviderPage,
)
from connector_registry.bodylimit import SmallBodyRoute, spool
from connector_registry.domain.catalogue import Provider

router = APIRouter(prefix="/v1", tags=["providers"], route_class=SmallBodyRoute)
imports = APIRouter(prefix="/v1", tags=["imports"])
DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@router.get("/providers")
async def list_providers(
    call: ProvidersRead,
    auth_type: Annotated[str | None, Query(alias="authType", max_length=50, pattern=NO_NUL)] = None,
    q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=200)] = 50,
    page_token: Annotated[str | None, Query(alias="pageToken", max_length=2048)] = None,
) -> ProviderPage:
    after = cursor(page_token, "after")
    items, following = await call.deps.catalogue.list(
        call.caller.org, auth_type, q, None if after is None else str(after), page_size
    )
    return ProviderPage(items=items, next_page_token=next_token(following))


@router.get("/providers/{name}", response_model=dict[str, Any])
async def get_provider(name: str, call: ProvidersRead) -> Response:
    body = await call.deps.catalogue.get_encoded(call.caller.org, path_text(name, "provider"))
    return Response(body, media_type="application/json")


@router.post("/providers", status_code=201)
async def create_provider(body: Provider, call: ProvidersWrite) -> dict[str, Any]:
    return await call.deps.catalogue.create(call.caller.org, body)


@imports.post("/providers:import", openapi_extra=DOCUMENT_BODY)
async def import_providers(
    call: ProvidersWrite, format: Annotated[Literal["nango"], Query()]
) -> ImportResultOut:
    """A Nango ``providers.yaml``; unsupported auth modes are listed as skipped."""
    document = await spool(call.request, call.deps.settings.import_max_bytes)
    with document:
        result = await call.deps.catalogue.import_nango(call.caller.org, document)
    return ImportResultOut.model_validate(result)


@imports.post("/connectors:import-openapi", status_code=201, openapi_extra=DOCUMENT_BODY)
async def import_openapi(
    call: ConnectorsWrite, name: Annotated[str | None, Query(min_length=1, max_length=200)] = None
) -> ImportedConnectorOut:
    """An OpenAPI 3.0 / 3.1 or Swagger 2.0 document (JSON or YAML) becomes a connector."""
    document = await spool(call.request, call.deps.settings.import_max_bytes)
    with document:
        view, messages, paths = await call.deps.catalogue.import_openapi(
            call.caller.org, name, document
        )
    connector = ConnectorOut.of(view, dev=call.deps.settings.dev_mode)
    return ImportedConnectorOut(connector=connector, validation_messages=messages, paths=paths)
