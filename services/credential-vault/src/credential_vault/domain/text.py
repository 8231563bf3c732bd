"""Text that PostgreSQL, JSON and logs can all hold.

A JSON body may carry what Python strings can hold but UTF-8 cannot (a lone
surrogate such as ``"\\ud800"``), and names may carry control characters
(NUL is refused by PostgreSQL ``text``; the others break log lines and UIs).
Either would surface as a 500 far from the input, so they are refused where
the input is parsed, naming the field and never quoting the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

NOT_UNICODE = "must be valid Unicode text"
HAS_CONTROL = "must not contain control characters"


def _plain(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(HAS_CONTROL)
    return value


PlainText = Annotated[str, AfterValidator(_plain)]
"""A name or label: printable Unicode only."""


def is_plain(value: str) -> bool:
    return _CONTROL.search(value) is None


def _join(path: str, key: str) -> str:
    """A child path; a key that could not be shown safely is left out of it."""
    if not is_plain(key):
        return path
    return f"{path}.{key}" if path else key


def bad_unicode(value: Any, path: str = "") -> Iterator[str]:
    """Paths (dotted, relative) of every key or string in ``value`` that is not UTF-8-able."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(str(key)):
                yield path
            else:
                yield from bad_unicode(item, _join(path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from bad_unicode(item, _join(path, str(index)))
