"""Small asyncio helpers shared by the long-running parts of a service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it; whatever it died of is not re-raised
    here, because stopping must go on to release the other resources."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def close_within(closing: Awaitable[Any], seconds: float = 5.0) -> None:
    """Await a close/stop that may hang on an unreachable server, at most `seconds`."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, seconds)
