"""What a registry route depends on: one flat ``Call[RegistryDeps]`` per route, by scope."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from plugboard_servicekit.errors import NotFound
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.pagination import decode_page_token, encode_page_token
from pydantic import BaseModel, ValidationError

from connector_registry.deps import RegistryDeps
from connector_registry.domain.text import storable

ConnectorsRead = Annotated[Call[RegistryDeps], authorize("connectors:read")]
ConnectorsWrite = Annotated[Call[RegistryDeps], authorize("connectors:write")]
ProvidersRead = Annotated[Call[RegistryDeps], authorize("providers:read")]
ProvidersWrite = Annotated[Call[RegistryDeps], authorize("providers:write")]
AppsRead = Annotated[Call[RegistryDeps], authorize("provider-apps:read")]
AppsWrite = Annotated[Call[RegistryDeps], authorize("provider-apps:write")]


NO_NUL = r"^[^\x00]*$"
"""Query values reach SQL; PostgreSQL text cannot hold NUL (a 422 instead of a 500)."""


def path_text(raw: str, what: str) -> str:
    """A path segment used as a key (config id, provider name): unstorable text names nothing."""
    if not storable(raw) or len(raw) > 200:
        raise NotFound(f"No such {what}.")
    return raw


def parse_id(raw: str, what: str = "connector") -> UUID:
    """Anything that is not a UUID names nothing: 404, like another org's id."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def cursor(token: str | None, key: str) -> Any:
    return None if token is None else decode_page_token(token).get(key)


def uuid_cursor(token: str | None) -> UUID | None:
    value = cursor(token, "after")
    try:
        return None if value is None else UUID(str(value))
    except ValueError:
        return None


def next_token(value: object | None) -> str | None:
    return None if value is None else encode_page_token({"after": str(value)})


def validate_body(model: type[BaseModel], document: Any) -> Any:
    """Validate like FastAPI does (problem lists the fields under ``body``)."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        issues = exc.errors(include_input=False, include_url=False)
        raise RequestValidationError(
            [{**issue, "loc": ("body", *issue["loc"])} for issue in issues]
        ) from None
