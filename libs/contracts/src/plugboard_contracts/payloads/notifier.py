"""Payloads published by notifier (webhook delivery)."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from plugboard_contracts.payloads._base import Payload


class DestinationDisabled(Payload):
    """``destination.disabled``: deliveries kept failing, so the webhook destination was paused.

    The URL is left out on purpose: webhook URLs often embed a token.
    """

    destination_id: UUID = Field(description="The destination (aggregate id, Kafka key).")
    name: str | None = Field(default=None, description="Destination name, if it has one.")
    reason: str = Field(min_length=1, description='Why, e.g. "consecutive_failures".')
    consecutive_failures: int = Field(ge=0, description="Failed deliveries in a row.")
    last_status_code: int | None = Field(
        default=None, description="HTTP status of the last attempt; None on network errors."
    )
