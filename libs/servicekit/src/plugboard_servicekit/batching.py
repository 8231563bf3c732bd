"""Group commit: concurrent callers share the calls of one batched operation.

While one call for a group is in flight, the items that arrive queue up and go
together in the next call (up to ``max_batch``): a lone item is sent at once, a storm
of them in batches. ``linger`` (default 0: no timer, no added latency) lets a call
that follows another wait up to that long for its batch to fill: under load, fewer
and fuller calls, each of whose fixed cost is shared by more items; a quiet group's
first call still goes at once, and a batch that fills goes when full. Each caller still waits
for, and gets, its own item's outcome (a value or an exception); a failed call fails
every item it carried. One sender task runs per group at a time, so a group's calls
never overlap and the order items were submitted in is the order they are sent in.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from plugboard_servicekit.errors import Unavailable
from plugboard_servicekit.metrics import GROUPED_CALL_ITEMS

G = TypeVar("G", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")

SendBatch = Callable[[G, list[I]], Awaitable[Sequence[R | BaseException]]]
"""One call for a group's items: an outcome per item, in the items' order."""


class GroupCommit(Generic[G, I, R]):
    """Submissions per group, sent by one sender task per group while any are queued."""

    def __init__(
        self, send: SendBatch[G, I, R], max_batch: int, name: str, linger: float = 0.0
    ) -> None:
        self._send, self._max_batch, self._name = send, max_batch, name
        self._linger = linger
        self._queued: dict[G, list[tuple[I, asyncio.Future[R]]]] = defaultdict(list)
        self._senders: dict[G, asyncio.Task[None]] = {}
        self._filling: dict[G, asyncio.Event] = {}
        self._items = GROUPED_CALL_ITEMS.labels(name)

    async def submit(self, group: G, item: I) -> R:
        """This item's outcome, once the call that carried it has answered."""
        outcome: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queued = self._queued[group]
        queued.append((item, outcome))
        if len(queued) >= self._max_batch and (filling := self._filling.get(group)):
            filling.set()
        sender = self._senders.get(group)
        if sender is None or sender.done():  # done: its callback has not run yet
            # A fresh context: the sender serves every submitter, not the first one's
            # request (its log lines would carry that request's id).
            task = asyncio.create_task(
                self._drain(group), name=f"{self._name}:{group}", context=contextvars.Context()
            )
            self._senders[group] = task
            task.add_done_callback(functools.partial(self._finished, group))
        return await outcome

    async def _drain(self, group: G) -> None:
        """Send this group's queue until it is empty; items queued meanwhile go next
        (after lingering, if set: they arrived during a call, so there is load)."""
        followed = False
        while queued := self._queued.pop(group, None):
            if followed and self._linger and len(queued) < self._max_batch:
                self._queued[group] = queued
                await self._fill(group)
                queued = self._queued.pop(group)
            self._queued[group] = queued[self._max_batch :]
            await self._call(group, queued[: self._max_batch])
            followed = True

    async def _fill(self, group: G) -> None:
        """Wait until the group's queue holds a full batch, or ``linger`` has passed."""
        filling = self._filling[group] = asyncio.Event()
        try:
            async with asyncio.timeout(self._linger):
                await filling.wait()
        except TimeoutError:
            pass
        finally:
            del self._filling[group]

    def _finished(self, group: G, sender: asyncio.Task[None]) -> None:
        """The sender is done. Normally its queue is empty; cancelled (even before it
        ever ran), what is still queued is answered rather than left waiting. A newer
        sender, started since, owns the queue."""
        if self._senders.get(group) is not sender:
            return
        del self._senders[group]
        for _, outcome in self._queued.pop(group, []):
            _settle(outcome, Unavailable("The service is stopping."))

    async def _call(self, group: G, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        outcomes: Sequence[R | BaseException]
        self._items.observe(len(batch))
        try:
            outcomes = await self._send(group, [item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{self._name}: {len(outcomes)} outcomes, {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - every waiter gets the call's failure
            outcomes = [exc] * len(batch)
        except BaseException:  # cancelled (stopping) or interrupted: nobody may hang
            for _, outcome in batch:
                _settle(outcome, Unavailable("The service is stopping."))
            raise
        for (_, outcome), result in zip(batch, outcomes, strict=True):
            _settle(outcome, result)


def _settle(outcome: asyncio.Future[R], result: R | BaseException) -> None:
    if outcome.done():  # its caller went away
        return
    if isinstance(result, BaseException):
        outcome.set_exception(result)
    else:
        outcome.set_result(result)
