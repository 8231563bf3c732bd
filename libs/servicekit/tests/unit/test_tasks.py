"""Stopping background tasks: a task that swallows its cancellation must still stop,
and a wait that is cancelled as its event fires must not carry on."""

from __future__ import annotations

import asyncio

from plugboard_servicekit.tasks import cancel_and_wait, close_within, wait_event


async def test_a_task_that_swallows_its_first_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what 3.11's wait_for does in a race

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(task))
    done, _ = await asyncio.wait({stopping}, timeout=10)  # not cancelling it on timeout
    assert stopping in done, "cancel_and_wait waited on a task that ignored its cancel"
    assert task.cancelled()
    assert swallowed == 1


async def test_cancelled_as_the_event_fires_the_waiter_stops() -> None:
    """The relay's idle wait: a stop arriving with a NOTIFY must end the loop."""
    event = asyncio.Event()
    rounds = 0

    async def poll_loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            event.clear()
            await wait_event(event, 3600)

    task = asyncio.create_task(poll_loop())
    await asyncio.sleep(0)
    event.set()
    task.cancel()  # both land before the loop runs again
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert rounds == 1


async def test_wait_event_answers_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


async def test_close_within_gives_up_on_a_hanging_close() -> None:
    hung = asyncio.Event()
    async with asyncio.timeout(5):
        await close_within(hung.wait(), 0.05)
    assert not hung.is_set()
