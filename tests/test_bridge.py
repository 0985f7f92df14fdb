"""The inbox between Zenoh's threads and the loop: it never makes a pusher wait, and overflows in the open."""

from __future__ import annotations

import threading

import anyio
from structlog.testing import capture_logs

from edabus._transport._bridge import Inbox


async def test_a_foreign_thread_never_waits_and_the_overflow_is_counted_and_kept() -> None:
    """A Zenoh-like thread pushes 25 items into an inbox of 10 + 5: it returns at once; 10 are refused and kept."""
    inbox: Inbox[int] = Inbox(10, overflow_limit=5, keep_rejected=True)
    pushed = threading.Event()

    def flood() -> None:
        for n in range(25):
            inbox.push(n)
        pushed.set()

    thread = threading.Thread(target=flood)
    thread.start()
    with anyio.fail_after(5):
        while not pushed.is_set():  # noqa: ASYNC110 - the event is a thread's
            await anyio.sleep(0.001)
    thread.join()
    assert len(inbox) == 15
    assert inbox.rejected == 10
    with anyio.fail_after(5):
        assert await inbox.get_rejected() == list(range(15, 25))
        assert await inbox.get_batch() == list(range(15))


async def test_forced_items_pass_the_limit() -> None:
    """Control items (membership changes, checkpoints) are queued even past the overflow limit."""
    inbox: Inbox[str] = Inbox(1, overflow_limit=0)
    inbox.push("a")
    inbox.push("refused")
    inbox.push("control", force=True)
    assert inbox.rejected == 1
    with anyio.fail_after(5):
        assert await inbox.get_batch() == ["a", "control"]


async def test_a_batch_is_cut_at_the_limit_in_order() -> None:
    """A puller's batch fills the inbox up to its limit; the rest is refused, in order."""
    inbox: Inbox[int] = Inbox(4, overflow_limit=2, keep_rejected=True)
    inbox.extend([0, 1, 2])
    inbox.extend([3, 4, 5, 6, 7])
    assert (len(inbox), inbox.rejected, inbox.peak) == (6, 2, 6)
    with anyio.fail_after(5):
        assert await inbox.get_rejected() == [6, 7]


async def test_an_overflow_burst_is_logged_once_and_its_end_once() -> None:
    """Many refusals log one `inbox.overflow`; a take below capacity logs `inbox.overflow_ended` with the count."""
    inbox: Inbox[int] = Inbox(2, overflow_limit=1, name="bank/Account")
    with capture_logs() as logs:
        for n in range(10):
            inbox.push(n)
        with anyio.fail_after(5):
            await inbox.get_batch(2)
        for n in range(5):
            inbox.push(n)
    events = [(e["event"], e.get("rejected")) for e in logs]
    assert events == [("inbox.overflow", None), ("inbox.overflow_ended", 7), ("inbox.overflow", None)]
    assert inbox.rejected == 7 + 3


async def test_a_loop_publisher_is_asked_to_wait_at_capacity() -> None:
    """A push on the loop thread that reaches capacity calls on_pressure; wait_room returns after a take."""
    pressured: list[Inbox[int]] = []
    inbox: Inbox[int] = Inbox(3, on_pressure=pressured.append)
    inbox.push(1)
    inbox.push(2)
    assert pressured == []
    inbox.push(3)
    assert pressured == [inbox]
    async with anyio.create_task_group() as tg:
        tg.start_soon(inbox.wait_room)
        with anyio.fail_after(5):
            assert await inbox.get_batch(1) == [1]
