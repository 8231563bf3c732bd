"""What a service subscribes with: a topic and its handler (``on``, ``on_batch``).

Apart from ``consumer`` (which runs them) so that services, which only declare their
subscriptions, import the small part.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from plugboard_contracts.envelope import CloudEvent
from plugboard_contracts.topics import CATALOGUE
from pydantic import BaseModel

from plugboard_servicekit.db import Connection

DepsT = TypeVar("DepsT")
Event = CloudEvent[dict[str, Any]]
"""The envelope with untyped data: topics outside the catalogue (tests, foreign)."""
Handler = Callable[[DepsT, Connection, CloudEvent[Any]], Awaitable[None]]
BatchHandler = Callable[[DepsT, Connection, Sequence[CloudEvent[Any]]], Awaitable[None]]
"""Applies a partition's new events at once (set-based SQL); same transaction rules."""


@dataclass(frozen=True)
class Subscription(Generic[DepsT]):
    """One topic and its handler (exactly one of `handle`, `handle_batch`).

    `payload` overrides the catalogue's payload model; it exists for topics outside
    the catalogue (tests, other platforms' topics), which otherwise get a dict."""

    topic: str
    handle: Handler[DepsT] | None = None
    handle_batch: BatchHandler[DepsT] | None = None
    payload: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        if (self.handle is None) == (self.handle_batch is None):
            raise ValueError(f"{self.topic}: give exactly one of handle and handle_batch")

    def event_model(self) -> type[CloudEvent[Any]]:
        """The envelope parametrised once per topic (subscripting per message is costly)."""
        spec = CATALOGUE.get(self.topic)
        payload: Any = self.payload or (spec.payload if spec else dict[str, Any])
        return CloudEvent[payload]


def on(
    topic: str, handler: Handler[DepsT], *, payload: type[BaseModel] | None = None
) -> Subscription[DepsT]:
    """Subscribe `handler(deps, conn, event)` to `topic`, one event at a time."""
    return Subscription(topic, handle=handler, payload=payload)


def on_batch(
    topic: str, handler: BatchHandler[DepsT], *, payload: type[BaseModel] | None = None
) -> Subscription[DepsT]:
    """Subscribe `handler(deps, conn, events)` to `topic`, a partition's new events at once."""
    return Subscription(topic, handle_batch=handler, payload=payload)
