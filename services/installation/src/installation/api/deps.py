"""What an installation route depends on: one flat ``Call[InstallationDeps]`` per scope."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from plugboard_servicekit.errors import BadRequest, NotFound
from plugboard_servicekit.http import Call, authorize
from plugboard_servicekit.pagination import decode_page_token, encode_page_token

from installation.deps import InstallationDeps

ProjectsRead = Annotated[Call[InstallationDeps], authorize("projects:read")]
ProjectsWrite = Annotated[Call[InstallationDeps], authorize("projects:write")]
ConnectionsRead = Annotated[Call[InstallationDeps], authorize("connections:read")]
ConnectionsWrite = Annotated[Call[InstallationDeps], authorize("connections:write")]
InstallationsRead = Annotated[Call[InstallationDeps], authorize("installations:read")]
InstallationsWrite = Annotated[Call[InstallationDeps], authorize("installations:write")]
AnyCaller = Annotated[Call[InstallationDeps], authorize()]

_START = ("1970-01-01T00:00:00+00:00", "00000000-0000-0000-0000-000000000000")


def parse_id(raw: str, what: str) -> UUID:
    """Anything that is not a UUID cannot name one of ours: 404, like a foreign id."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"No {what} with this id.") from None


def page_after(token: str | None) -> tuple[Any, Any]:
    """The (createTime, id) cursor a page token holds; the start without one."""
    if token is None:
        return _parse_cursor(_START)
    try:
        cursor = decode_page_token(token)
        return _parse_cursor((cursor["t"], cursor["id"]))
    except (KeyError, TypeError, ValueError):
        raise BadRequest("The page token is not valid.") from None


def _parse_cursor(raw: tuple[str, str]) -> tuple[Any, Any]:
    from datetime import datetime

    return datetime.fromisoformat(raw[0]), UUID(raw[1])


def next_page(rows: list[dict[str, Any]], size: int) -> str | None:
    if len(rows) <= size:
        return None
    last = rows[size - 1]
    return encode_page_token({"t": last["created_at"].isoformat(), "id": str(last["id"])})
