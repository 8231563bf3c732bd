"""Timestamp type shared by the envelope and the payloads.

Every instant on the wire is timezone-aware and normalised to UTC, so that
consumers never guess a zone and equal instants serialise to equal strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A datetime that must carry a timezone; stored and serialised as UTC (``...Z``)."""


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
