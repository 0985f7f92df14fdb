"""The inbox between Zenoh's threads and the loop: when a full inbox counts as stalled."""

from __future__ import annotations

import anyio

from edabus._bridge import Inbox


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_after_idleness_is_not_a_stall() -> None:
    """An inbox idle past the stall timeout, then filled by a burst, waits for its consumer: no stall yet."""
    clock = Clock()
    inbox: Inbox[int] = Inbox(10, stall_timeout=2.0, clock=clock)
    clock.now = 60.0  # a minute with nothing to take
    inbox.extend(list(range(10)))  # a burst fills it before the consumer runs
    assert inbox.room() == 0  # the puller waits: the consumer has not had its chance
    assert inbox.stalls == 0
    clock.now += 1.9
    assert inbox.room() == 0
    assert inbox.stalls == 0


async def test_a_full_inbox_that_nobody_takes_from_stalls_after_the_timeout() -> None:
    """Full and no take for the stall timeout: it overflows (a batch of room), counted once; a take recovers it."""
    clock = Clock()
    inbox: Inbox[int] = Inbox(10, stall_timeout=2.0, clock=clock)
    inbox.extend(list(range(10)))
    assert inbox.room() == 0
    clock.now += 2.1
    assert inbox.room() > 0
    assert inbox.stalls == 1
    inbox.extend([10, 11])  # held beyond capacity while stalled
    with anyio.fail_after(5):
        assert await inbox.get_batch() == list(range(12))
    assert inbox.room() == 10
    inbox.extend(list(range(10)))
    clock.now += 1.0  # full again, one second after the take: not stalled
    assert inbox.room() == 0
    assert inbox.stalls == 1


async def test_taking_restarts_the_stall_clock() -> None:
    """A consumer that takes now and then, slower than arrivals, is never declared stalled."""
    clock = Clock()
    inbox: Inbox[int] = Inbox(4, stall_timeout=2.0, clock=clock)
    for _ in range(5):
        inbox.extend([1, 2, 3, 4])
        clock.now += 1.5
        assert inbox.room() == 0
        with anyio.fail_after(5):
            await inbox.get_batch(1)
        inbox.extend([5])
        inbox.drain()  # (the rest, as if taken)
    assert inbox.stalls == 0
