"""Plugboard's event contracts: the CloudEvents envelope, payload models, topics and enums."""

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.ids import uuid7
from plugboard_contracts.parsing import parse_event
from plugboard_contracts.topics import (
    CATALOGUE,
    TopicSpec,
    all_topic_names,
    dlq_topic,
    new_event,
)

__all__ = [
    "CATALOGUE",
    "CloudEvent",
    "TopicSpec",
    "all_topic_names",
    "dlq_topic",
    "new_event",
    "parse_event",
    "uuid7",
]
