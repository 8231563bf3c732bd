"""Use cases of the provider catalogue: browse it, extend it per org (one entry or a
Nango import), and make ready connectors from entries or OpenAPI documents.

Document parsing is CPU work of a second or more on 10 MB: it runs in a worker
thread so the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import anyio
import asyncpg
from plugboard_servicekit.errors import Conflict, FieldError, Invalid, NotFound
from pydantic import ValidationError

from connector_registry import repository_catalogue as repo
from connector_registry.domain import catalogue, nango, openapi, templates
from connector_registry.domain.catalogue import PROVIDER_ADAPTER, Provider, catalogue_entry
from connector_registry.domain.documents import DocumentError, Readable
from connector_registry.domain.messages import ValidationMessage
from connector_registry.models import ConnectorIn
from connector_registry.service_connectors import ConnectorService, ConnectorView

T = TypeVar("T")
_SAFE_INPUT = re.compile(r"^[^/?#@\s\\]{1,253}$")
"""An input lands inside a URL (a subdomain, a tenant id): no character that could
move the request to another host or path."""
IMPORT_BATCH = 500


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    display_name: str
    auth_types: tuple[str, ...]
    document: dict[str, Any]
    encoded: bytes = b""


@cache
def builtin_entries() -> dict[str, Entry]:
    entries = {}
    for name, provider in catalogue.builtin().items():
        document = catalogue_entry(provider)
        kinds = tuple(provider.auth_types())
        encoded = json.dumps(document, separators=(",", ":")).encode()
        entries[name] = Entry(name, provider.display_name, kinds, document, encoded)
    return entries


def _entry(document: dict[str, Any]) -> Entry:
    kinds = tuple(dict.fromkeys(s["schemeType"] for s in document["authSchemes"]))
    return Entry(document["name"], document["displayName"], kinds, document)


def _matches(entry: Entry, auth_type: str | None, q: str | None) -> bool:
    if auth_type is not None and auth_type not in entry.auth_types:
        return False
    return q is None or q.lower() in entry.name.lower() or q.lower() in entry.display_name.lower()


def _invalid(exc: ValidationError, prefix: str) -> Invalid:
    errors = [
        FieldError(".".join([prefix, *(str(p) for p in e["loc"])]), e["msg"])
        for e in exc.errors(include_input=False, include_url=False)
    ]
    return Invalid("The document breaks the catalogue schema.", errors=errors)


async def _in_thread(work: Callable[[], T]) -> T:
    try:
        return await anyio.to_thread.run_sync(work)
    except DocumentError as exc:
        raise Invalid(str(exc), errors=[FieldError("body", str(exc))]) from None


class CatalogueService:
    def __init__(
        self, pool: asyncpg.Pool, connectors: ConnectorService, *, dev: bool = False
    ) -> None:
        self.pool = pool
        self.connectors = connectors
        self.dev = dev
        """Dev mode: org entries may name http endpoints (local providers are http)."""

    async def get_encoded(self, org: str, name: str) -> bytes:
        """The entry as JSON bytes: built-in ones are encoded once at start-up."""
        own = await repo.get_provider(self.pool, org, name)
        if own is not None:
            return json.dumps(own, separators=(",", ":")).encode()
        entry = builtin_entries().get(name)
        if entry is None:
            raise NotFound("No such provider.")
        return entry.encoded

    async def get(self, org: str, name: str) -> dict[str, Any]:
        own = await repo.get_provider(self.pool, org, name)
        if own is not None:
            return own
        entry = builtin_entries().get(name)
        if entry is None:
            raise NotFound("No such provider.")
        return entry.document

    async def list(
        self, org: str, auth_type: str | None, q: str | None, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        pattern = None if q is None else "%" + q.replace("\\", "").replace("%", "") + "%"
        own = [_entry(d) for d in await repo.list_providers(self.pool, org, auth_type, pattern)]
        merged = {e.name: e for e in builtin_entries().values() if _matches(e, auth_type, q)}
        merged |= {entry.name: entry for entry in own}
        names = sorted(name for name in merged if after is None or name > after)
        page = names[: limit + 1]
        following = page[limit - 1] if len(page) > limit else None
        return [merged[name].document for name in page[:limit]], following

    async def create(self, org: str, provider: Provider) -> dict[str, Any]:
        found = catalogue.problems(provider, allow_http=self.dev)
        if found:
            errors = [FieldError("body." + text.split(":")[0], text) for text in found]
            raise Invalid("The provider entry is not sound.", errors=errors)
        document = catalogue_entry(provider.model_copy(update={"source": _org_source()}))
        async with self.pool.acquire() as conn:
            if not await repo.insert_provider(conn, org, document, provider.auth_types()):
                raise Conflict("The organisation already has a provider with this name.")
        return document

    async def import_nango(self, org: str, stream: Readable) -> dict[str, Any]:
        document = await _in_thread(lambda: nango.load_document(stream))
        result = await _in_thread(lambda: nango.import_document(document, allow_http=self.dev))
        unique = {p.name: p for p in result.providers}
        entries = [(catalogue_entry(p), p.auth_types()) for p in unique.values()]
        imported = updated = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for start in range(0, len(entries), IMPORT_BATCH):
                batch = entries[start : start + IMPORT_BATCH]
                inserted, changed = await repo.upsert_providers(conn, org, batch)
                imported, updated = imported + inserted, updated + changed
        skipped = [{"name": s.name, "reason": s.reason} for s in result.skipped]
        return {"imported": imported, "updated": updated, "skipped": skipped}

    async def from_provider(
        self, org: str, name: str, provider_name: str, inputs: dict[str, str], base_url: str | None
    ) -> ConnectorView:
        try:
            provider = PROVIDER_ADAPTER.validate_python(await self.get(org, provider_name))
        except NotFound:
            raise Invalid(
                "Unknown provider.", errors=[FieldError("body.provider", "unknown")]
            ) from None
        values = _values(provider, inputs)
        rendered = _render(provider.model_dump(mode="json", exclude_none=True), values)
        body = {
            "name": name,
            "protocol": provider.protocol.value,
            "baseUrl": base_url or rendered.get("baseUrl"),
            "datasetId": rendered.get("datasetTemplate"),
            "documentationUrl": rendered.get("docsUrl"),
            "categories": rendered.get("categories", []),
            "connectionVariables": [{"name": k, "value": v} for k, v in inputs.items()],
            "authSchemeConfigs": rendered["authSchemes"],
        }
        if body["protocol"] == "bigquery":
            body["baseUrl"] = None
        try:
            connector = ConnectorIn.model_validate(body)
        except ValidationError as exc:
            raise _invalid(exc, "body") from None
        return await self.connectors.create(org, connector, provider=provider.name)

    async def import_openapi(
        self, org: str, name: str | None, stream: Readable
    ) -> tuple[ConnectorView, list[ValidationMessage], int]:
        document = await _in_thread(lambda: openapi.load_document(stream))
        draft = openapi.draft(document)
        chosen = name or draft.title
        if not chosen:
            raise Invalid("Name the connector.", errors=[FieldError("query.name", "required")])
        body = ConnectorIn(
            name=chosen[:200], base_url=draft.base_url, documentation_url=draft.documentation_url,
            connection_variables=[{"name": k, "value": v} for k, v in draft.connection_variables],  # type: ignore[list-item]
            auth_scheme_configs=draft.auth_schemes,
        )  # fmt: skip
        return await self.connectors.create(org, body), draft.messages, draft.paths


def _org_source() -> catalogue.ProviderSource:
    return catalogue.ProviderSource(origin="org")


def _values(provider: Provider, inputs: dict[str, str]) -> dict[str, str]:
    """Defaults overlaid with the given inputs; 422 naming every missing or unsafe one."""
    errors = [
        FieldError(f"body.inputs.{key}", "must not contain / ? # @, spaces or backslashes")
        for key, value in inputs.items()
        if not _SAFE_INPUT.fullmatch(value)
    ]
    values = {i.name: i.default for i in provider.inputs if i.default} | inputs
    used = {name for _f, text in provider.templated_strings() for name in templates.variables(text)}
    errors += [
        FieldError(f"body.inputs.{i.name}", "required by this provider")
        for i in provider.inputs
        if i.name in used and not values.get(i.name)
    ]
    if errors:
        raise Invalid("Inputs are missing or invalid.", errors=errors)
    return {key: value for key, value in values.items() if value}


def _render(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return templates.render(value, values)
    if isinstance(value, list):
        return [_render(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, values) for key, item in value.items()}
    return value
