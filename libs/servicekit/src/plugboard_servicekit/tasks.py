"""Small asyncio helpers shared by the long-running parts of a service.

They use ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11 ``wait_for``
returns the inner result and swallows a cancellation that arrives as the inner
awaitable completes (gh-86296). A relay that swallowed its stop that way woke, went on
polling, and left the service's shutdown waiting for it forever."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from plugboard_servicekit.logging import get_logger

log = get_logger(__name__)

_RECANCEL_SECONDS = 1.0


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it; whatever it died of is not re-raised
    here, because stopping must go on to release the other resources. A task that
    swallowed the cancellation (a library catching it, a race) is cancelled again."""
    if task is None:
        return
    task.cancel()
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=_RECANCEL_SECONDS)
        if not done:
            log.warning("task_ignored_cancel", task=task.get_name())
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def close_within(closing: Awaitable[Any], seconds: float = 5.0) -> None:
    """Await a close/stop that may hang on an unreachable server, at most `seconds`."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(seconds):
            await closing


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most `seconds` for `event`; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
