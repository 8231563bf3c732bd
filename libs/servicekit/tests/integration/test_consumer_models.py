"""What a handler receives: the envelope parametrised with the topic's catalogue
payload, read tolerantly (fields added by a newer producer are ignored)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import pytest
from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.payloads import ConnectionCreated
from plugboard_contracts.topics import new_event
from plugboard_servicekit.consumer import EventConsumer
from plugboard_servicekit.db import Connection
from plugboard_servicekit.subscriptions import Subscription, on, on_batch
from pydantic import BaseModel, ValidationError


async def handler(_: None, conn: Connection, event: CloudEvent[Any]) -> None:
    """Never called here."""


async def batch_handler(_: None, conn: Connection, events: Sequence[CloudEvent[Any]]) -> None:
    """Never called here."""


def test_catalogue_topics_are_parsed_into_their_payload_ignoring_new_fields() -> None:
    data = ConnectionCreated(organisation_id="o1", version=3, connection_id=uuid4(), name="crm")
    event = new_event("connection.created", source="installation", orgid="o1", data=data)
    wire = json.loads(event.to_json_bytes())
    wire["data"]["fieldAddedLater"] = {"nested": [1, 2]}  # a newer producer
    wire["newextension"] = "value"  # a CloudEvents extension we do not know
    model = on("connection.created", handler).event_model()
    parsed = model.model_validate_json(json.dumps(wire))
    assert type(parsed.data) is ConnectionCreated
    assert parsed.data == data
    wire["data"].pop("connectionId")
    with pytest.raises(ValidationError):  # a missing required field is still refused
        model.model_validate_json(json.dumps(wire))


def test_other_topics_get_a_dict_or_the_payload_given() -> None:
    class Thing(BaseModel):
        version: int

    assert on("elsewhere.thing", handler).event_model() is CloudEvent[dict[str, Any]]
    assert (
        on_batch("elsewhere.thing", batch_handler, payload=Thing).event_model() is CloudEvent[Thing]
    )


def test_a_subscription_has_exactly_one_handler_and_a_topic_is_subscribed_once() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Subscription("t")
    with pytest.raises(ValueError, match="exactly one"):
        Subscription("t", handle=handler, handle_batch=batch_handler)
    with pytest.raises(ValueError, match="subscribed twice"):
        EventConsumer(None, "127.0.0.1:1", "g", None, [on("t", handler), on("t", handler)])  # type: ignore[arg-type]
