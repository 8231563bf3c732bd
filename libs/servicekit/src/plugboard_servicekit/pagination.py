"""``pageSize`` / ``pageToken`` pagination with opaque keyset tokens.

A token is the urlsafe base64 of a compact JSON object (the last row's sort
key). It is opaque to clients but not secret: it only moves a cursor inside
data the caller may already read.
"""

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from plugboard_servicekit.errors import BadRequest, FieldError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_MAX_TOKEN_CHARS = 2048


def encode_page_token(cursor: dict[str, Any]) -> str:
    """Token for ``cursor`` (JSON values only), without base64 padding."""
    raw = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_page_token(token: str) -> dict[str, Any]:
    """The cursor in ``token``; a 400 problem for anything this module did not produce."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        cursor = None
    if not isinstance(cursor, dict):
        raise BadRequest("invalid pageToken", errors=[FieldError("query.pageToken", "invalid")])
    return cursor


class PageParams:
    """Dependency: ``Depends(PageParams)`` reads ``pageSize`` and ``pageToken``.

    ``cursor`` is the decoded token (``None`` on the first page); a garbage
    token fails here, before the handler runs.
    """

    def __init__(
        self,
        page_size: Annotated[
            int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)
        ] = DEFAULT_PAGE_SIZE,
        page_token: Annotated[
            str | None, Query(alias="pageToken", max_length=_MAX_TOKEN_CHARS)
        ] = None,
    ) -> None:
        self.page_size = page_size
        self.page_token = page_token
        self.cursor = decode_page_token(page_token) if page_token else None
