"""Text that PostgreSQL can store: no NUL character, no lone UTF-16 surrogate.

JSON allows both (``"\\u0000"``, ``"\\ud800"``); PostgreSQL ``text`` and ``jsonb``
refuse them, which would surface as a 500. Every input model checks its whole
input with ``check_storable`` before field validation, and path and query values
go through ``storable``.
"""

from __future__ import annotations

from typing import Any


def storable(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_storable(data: Any, depth: int = 0) -> Any:
    """``data`` unchanged, or ValueError if any string in it (keys too) is not storable."""
    if isinstance(data, str):
        if not storable(data):
            raise ValueError("text must not contain NUL characters or lone surrogates")
    elif isinstance(data, dict) and depth < 64:
        for key, value in data.items():
            check_storable(key, depth + 1)
            check_storable(value, depth + 1)
    elif isinstance(data, list | tuple) and depth < 64:
        for item in data:
            check_storable(item, depth + 1)
    return data
