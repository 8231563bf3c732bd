"""The AsyncAPI 3.0 document of every Plugboard topic, generated from the catalogue.

One channel per topic (address = topic = event type), one message per channel
whose payload is the CloudEvent envelope schema with the typed ``data``, the
Kafka key (the envelope ``subject``, the aggregate id) in the Kafka message
binding, and the ``traceparent`` header. Subscribers generate clients from it;
``make schemas`` writes it and the test suite checks it for drift.
"""

from __future__ import annotations

import inspect
from typing import Any

import yaml

from plugboard_contracts.topics import CATALOGUE, TopicSpec, dlq_topic

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMA_FORMAT = "application/schema+json;version=draft-07"
_HEADERS = {
    "type": "object",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the change that produced the event.",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        }
    },
}


def _message_name(event_type: str) -> str:
    return event_type.replace(".", "_")


def _message(spec: TopicSpec) -> dict[str, Any]:
    from plugboard_contracts.export_schemas import event_schema  # one schema source

    summary = inspect.getdoc(spec.payload) or spec.type
    return {
        "name": spec.type,
        "title": spec.payload.__name__,
        "summary": summary.splitlines()[0],
        "description": summary,
        "contentType": "application/json",
        "headers": _HEADERS,
        "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": event_schema(spec)},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": f"The aggregate id ({spec.key_field}); the envelope subject.",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _channel(spec: TopicSpec) -> dict[str, Any]:
    name = _message_name(spec.type)
    return {
        "address": spec.type,
        "description": f"{spec.type} events; undeliverable ones go to {dlq_topic(spec.type)}.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "bindings": {
            "kafka": {
                "topic": spec.type,
                "partitions": spec.partitions,
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """The document as a mapping, channels in catalogue order."""
    specs = list(CATALOGUE.values())
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Plugboard events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 (structured JSON) on Kafka, one topic per type.",
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker `make dev` starts.",
            }
        },
        "channels": {_message_name(s.type): _channel(s) for s in specs},
        "operations": {
            f"receive_{_message_name(s.type)}": {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{_message_name(s.type)}"},
                "messages": [
                    {"$ref": f"#/channels/{_message_name(s.type)}/messages/{_message_name(s.type)}"}
                ],
            }
            for s in specs
        },
        "components": {"messages": {_message_name(s.type): _message(s) for s in specs}},
    }


def render_asyncapi() -> str:
    """The document as stable YAML text."""
    return yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)
