"""GroupCommit: items that arrive while a call is in flight share the next call, and
each caller gets its own item's outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from plugboard_servicekit.batching import GroupCommit
from plugboard_servicekit.errors import Unavailable
from prometheus_client import REGISTRY


class Recorder:
    """A batched operation that doubles numbers, refuses negative ones, and holds each
    call open until ``release`` is set (so tests decide what queues meanwhile)."""

    def __init__(self, outcomes_short: bool = False) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next: Exception | None = None
        self._short = outcomes_short

    async def send(self, group: str, items: list[int]) -> list[int | BaseException]:
        self.calls.append((group, items))
        await self.release.wait()
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        outcomes: list[int | BaseException] = [
            ValueError(f"negative {i}") if i < 0 else i * 2 for i in items
        ]
        return outcomes[1:] if self._short else outcomes


async def test_a_lone_item_is_sent_at_once() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 10, "test")
    assert await batches.submit("a", 21) == 42
    assert recorder.calls == [("a", [21])]


async def test_items_queued_during_a_call_share_the_next_call_up_to_the_limit() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batches = GroupCommit(recorder.send, 3, "test")
    first = asyncio.create_task(batches.submit("a", 0))
    await asyncio.sleep(0)  # the first call is now in flight, held open
    rest = [asyncio.create_task(batches.submit("a", i)) for i in range(1, 6)]
    other_group = asyncio.create_task(batches.submit("b", 100))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 0
    assert [await task for task in rest] == [2, 4, 6, 8, 10]
    assert await other_group == 200
    calls_of_a = [items for group, items in recorder.calls if group == "a"]
    assert calls_of_a == [[0], [1, 2, 3], [4, 5]]
    assert ("b", [100]) in recorder.calls


async def test_an_item_refused_alone_fails_only_its_caller() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batches = GroupCommit(recorder.send, 10, "test")
    tasks = [asyncio.create_task(batches.submit("a", i)) for i in (1, -2, 3)]
    await asyncio.sleep(0)
    recorder.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert (results[0], results[2]) == (2, 6)
    assert isinstance(results[1], ValueError)


async def test_a_failed_call_fails_every_item_it_carried_and_the_next_call_runs() -> None:
    recorder = Recorder()
    recorder.release.clear()
    recorder.fail_next = ConnectionError("down")
    batches = GroupCommit(recorder.send, 10, "test")
    tasks = [asyncio.create_task(batches.submit("a", i)) for i in (1, 2)]
    await asyncio.sleep(0)
    recorder.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await batches.submit("a", 5) == 10


async def test_a_send_answering_the_wrong_number_of_outcomes_fails_its_items() -> None:
    batches = GroupCommit(Recorder(outcomes_short=True).send, 10, "test")
    with pytest.raises(RuntimeError, match="outcomes"):
        await batches.submit("a", 1)


async def test_a_caller_that_goes_away_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batches = GroupCommit(recorder.send, 10, "test")
    leaving = asyncio.create_task(batches.submit("a", 1))
    staying = asyncio.create_task(batches.submit("a", 2))
    await asyncio.sleep(0)
    leaving.cancel()
    recorder.release.set()
    assert await staying == 4
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_stopped_sender_answers_its_waiters_instead_of_leaving_them_hanging() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batches = GroupCommit(recorder.send, 1, "test")
    in_flight = asyncio.create_task(batches.submit("a", 1))
    await asyncio.sleep(0)
    queued = asyncio.create_task(batches.submit("a", 2))
    await asyncio.sleep(0)
    [sender] = [t for t in asyncio.all_tasks() if t.get_name() == "test:a"]
    sender.cancel()
    for task in (in_flight, queued):
        with pytest.raises(Unavailable):
            await task


async def test_a_sender_cancelled_before_it_ran_answers_and_the_group_recovers() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 10, "test")
    first = asyncio.create_task(batches.submit("a", 1))
    await asyncio.sleep(0)  # first's submit made the sender; it has not run yet
    [sender] = [t for t in asyncio.all_tasks() if t.get_name() == "test:a"]
    sender.cancel()
    with pytest.raises(Unavailable):
        await first
    assert await batches.submit("a", 2) == 4  # a new sender, not the dead one
    assert recorder.calls == [("a", [2])]


async def test_an_item_submitted_as_the_sender_finishes_is_sent_by_a_new_one() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 10, "test")
    assert await batches.submit("a", 1) == 2  # its sender is done, its callback pending
    assert await batches.submit("a", 3) == 6
    assert recorder.calls == [("a", [1]), ("a", [3])]


async def _within(awaitable: Awaitable[int]) -> int:
    """The awaited value; a test that would wait for a 60 s linger fails in 5 s instead."""
    async with asyncio.timeout(5):
        return await awaitable


async def _queued_behind_a_call(
    batches: GroupCommit[str, int, int], recorder: Recorder
) -> asyncio.Task[int]:
    """Item 1, queued while a first call (item 0) was held open; that call has answered,
    so the sender is preparing a following call, with load shown."""
    recorder.release.clear()
    first = asyncio.create_task(batches.submit("a", 0))
    await asyncio.sleep(0)
    queued = asyncio.create_task(batches.submit("a", 1))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 0
    await asyncio.sleep(0)
    assert not queued.done()
    return queued


async def test_with_linger_a_quiet_groups_first_call_still_goes_at_once() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 10, "test", linger=60)
    assert await _within(batches.submit("a", 21)) == 42


async def test_with_linger_a_following_call_waits_for_its_batch_and_goes_when_full() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 3, "test", linger=60)
    queued = await _queued_behind_a_call(batches, recorder)
    assert [items for _, items in recorder.calls] == [[0]]  # item 1 lingers
    later = [asyncio.create_task(batches.submit("a", i)) for i in (2, 3)]
    assert await _within(queued) == 2
    assert [await _within(task) for task in later] == [4, 6]
    assert [items for _, items in recorder.calls] == [[0], [1, 2, 3]]


async def test_with_linger_a_batch_that_does_not_fill_goes_when_linger_ends() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 10, "test", linger=0.01)
    queued = await _queued_behind_a_call(batches, recorder)
    assert await _within(queued) == 2
    assert [items for _, items in recorder.calls] == [[0], [1]]


async def test_a_sender_stopped_while_lingering_answers_its_waiters() -> None:
    recorder = Recorder()
    batches = GroupCommit(recorder.send, 10, "lingering", linger=60)
    queued = await _queued_behind_a_call(batches, recorder)
    [sender] = [t for t in asyncio.all_tasks() if t.get_name() == "lingering:a"]
    sender.cancel()
    with pytest.raises(Unavailable):
        await _within(queued)
    assert await _within(batches.submit("a", 5)) == 10  # the group recovers


async def test_every_call_is_counted_with_its_items_in_the_metrics() -> None:
    """``plugboard_grouped_call_items{operation=...}``: how full the shared calls run."""
    recorder = Recorder()
    recorder.release.clear()
    batches = GroupCommit(recorder.send, 3, "metrics-test")
    first = asyncio.create_task(batches.submit("a", 0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batches.submit("a", i)) for i in range(1, 4)]
    await asyncio.sleep(0)
    recorder.release.set()
    await asyncio.gather(first, *rest)
    labels = {"operation": "metrics-test"}
    assert REGISTRY.get_sample_value("plugboard_grouped_call_items_count", labels) == 2
    assert REGISTRY.get_sample_value("plugboard_grouped_call_items_sum", labels) == 4
