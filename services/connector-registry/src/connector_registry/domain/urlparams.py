"""URL-encoded parameter strings (``additionalAuthorizeParams``, ``additionalTokenParams``).

Versori keeps them as ``application/x-www-form-urlencoded`` text. We refuse what
a browser or a token endpoint would misread: a pair without ``=``, a broken
percent escape, characters that must be encoded, and parameters the OAuth broker
sets itself (overriding ``redirect_uri`` or ``state`` from a config would break
the flow's security).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_UNENCODED = re.compile(r"[\s#\"<>\\^`{|}\x00-\x1f\x7f]")

RESERVED_AUTHORIZE = frozenset(
    {
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "code_challenge",
        "code_challenge_method",
        "scope",
        "nonce",
    }
)
RESERVED_TOKEN = frozenset(
    {
        "grant_type",
        "code",
        "code_verifier",
        "redirect_uri",
        "refresh_token",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    }
)


class UrlParamsError(ValueError):
    """The text is not a valid parameter string; the message never quotes it."""


def parse_params(text: str, *, reserved: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """The pairs of ``text`` in order, or ``UrlParamsError`` naming what is wrong."""
    if text == "":
        return []
    if _BAD_ESCAPE.search(text):
        raise UrlParamsError("contains a malformed percent escape")
    if _UNENCODED.search(text):
        raise UrlParamsError("contains characters that must be percent-encoded")
    for part in text.split("&"):
        if "=" not in part or part.startswith("="):
            raise UrlParamsError("every parameter must be name=value")
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    clashes = sorted({name for name, _ in pairs} & reserved)
    if clashes:
        raise UrlParamsError("sets parameters the OAuth broker owns: " + ", ".join(clashes))
    return pairs


def encode_params(params: Mapping[str, object], *, reserved: frozenset[str] = frozenset()) -> str:
    """Encode a mapping (as Nango and the catalogue hold them), dropping reserved names.

    Reserved ones are dropped rather than refused: imported documents repeat values
    the broker sends anyway (``response_type=code``, ``grant_type=...``).
    """
    kept = [(str(k), _text(v)) for k, v in params.items() if str(k) not in reserved]
    return urlencode(kept)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
