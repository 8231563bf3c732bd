"""Reading events off Kafka for any subscriber: ``parse_event`` returns the typed envelope.

Structured mode (our producers: the whole CloudEvent JSON in the value) and the
CloudEvents Kafka binary mode (attributes in ``ce_*`` headers, the payload in the
value) are both read, so events re-published by other tools parse too. Unknown
fields are ignored (tolerant reader); an unknown event type is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.topics import CATALOGUE

KafkaHeaders = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]
"""aiokafka gives a tuple of pairs, confluent-kafka a list of pairs (or None)."""
_BINARY_PREFIX = "ce_"


class UnknownEventTypeError(ValueError):
    """The event's type is not in the catalogue this library knows."""


@cache
def envelope_model(event_type: str) -> type[CloudEvent[Any]]:
    """``CloudEvent[<payload of event_type>]``, built once per type (subscripting is costly)."""
    spec = CATALOGUE.get(event_type)
    if spec is None:
        raise UnknownEventTypeError(f"unknown event type {event_type!r}")
    payload: type[BaseModel] = spec.payload
    return CloudEvent[payload]  # type: ignore[valid-type]


def parse_event(value: bytes | str | None, headers: KafkaHeaders | None = None) -> CloudEvent[Any]:
    """The typed event in a Kafka record; ``pydantic.ValidationError`` when it is invalid.

    ``event.data`` is the catalogue's payload model of ``event.type``
    (``CredentialExpired`` for ``credential.expired``, ...).
    """
    if value is None:
        raise ValueError("a record without a value (a tombstone) is no event")
    attributes = _binary_attributes(headers)
    if "type" in attributes:
        document: dict[str, Any] = {**attributes, "data": json.loads(value)}
        return envelope_model(str(attributes["type"])).model_validate(document)
    document = json.loads(value)
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        raise ValueError("not a CloudEvent: no type attribute")
    return envelope_model(document["type"]).model_validate(document)


def _binary_attributes(headers: KafkaHeaders | None) -> dict[str, str]:
    """CloudEvents attributes carried as ``ce_<name>`` headers (binary content mode)."""
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    attributes: dict[str, str] = {}
    for key, raw in pairs:
        key = str(key)
        if key.startswith(_BINARY_PREFIX) and raw is not None:
            text = raw.decode() if isinstance(raw, bytes) else raw
            attributes[key.removeprefix(_BINARY_PREFIX)] = text
    return attributes
