"""One `wait_until` for every test: poll an async (or plain) condition until it holds."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool],
    timeout: float = 30.0,
    interval: float = 0.05,
    *,
    message: str = "condition not reached in time",
) -> None:
    """Return once `predicate()` is true; AssertionError after `timeout` seconds.

    Tests wait on effects that happen in other tasks or processes (a consumer, a
    relay, a sweeper), so they poll a condition instead of sleeping a guessed time.
    The predicate is checked once more at the deadline, so a slow poll cannot fail a
    condition that holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{message} (waited {timeout:g}s)")
        await asyncio.sleep(interval)
