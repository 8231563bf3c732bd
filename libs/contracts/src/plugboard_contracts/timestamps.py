"""Timestamp type shared by the envelope and the payloads.

Every instant on the wire is timezone-aware and normalised to UTC, so that
consumers never guess a zone and equal instants serialise to equal strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _to_utc(value: datetime) -> datetime:
    """A ValueError (a validation error) where UTC leaves datetime's range, e.g.
    ``9999-12-31T23:59:59-01:00``: an OverflowError would escape pydantic as a 500."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant is out of range in UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A datetime that must carry a timezone; stored and serialised as UTC (``...Z``)."""


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
