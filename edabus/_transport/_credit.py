"""Credit: how a group's node holds back the edabus publishers that flood it.

Zenoh's congestion control BLOCK makes a sender wait for a slow receiver, but
across a router the sender that waits is the router, and after 5 s
(``wait_before_close``) it closes the slow node's link with whatever it held.
So edabus carries its own flow control end to end, above Zenoh, the way AMQP
1.0 link credit, HTTP/2 windows and Reactive Streams demand do.

A node grants each edabus publisher a *window* per group: at most ``window``
messages (and ``window_bytes`` bytes) sent to that group on that node and not
yet taken in. The node states its window in its catalog. The publisher counts
what it sends to each (group, node) and, every half window, sends a
*checkpoint*: a query to ``@edabus/credit/{app}/{group}/{node}``. The query
travels behind the messages sent before it; the node notes the group inbox's
position (how many arrivals it has queued, those messages included) and answers
once its dispatcher has taken that many out, with the inbox below
``inbox_size``. A reply therefore means: everything sent before the checkpoint
has left the inbox (into the dispatcher's hands, then an actor's mailbox). A
publisher whose window is spent waits for the next reply.

- The node keeps nothing per publisher (`Checkpoints`): each checkpoint is
  answered in its turn, and held while the group's inbox is over its size.
- A checkpoint that reaches no node (it stopped or died, the router restarted)
  ends without a reply: the window is forgiven, since what was in flight is
  gone with the link, and membership changes do the rest. One that times out
  (a stuck actor holds the inbox) is sent again, and the publisher waits on:
  a query held to its timeout may end with no reply at all (the router ends
  it), so "no reply" counts as gone only when it came well before the timeout.
- Only the node's own session may answer (the one that proved it a member):
  a stranger's queryable on the checkpoint key frees no credit.
- Messages published from inside handlers count but never wait: an actor
  waiting on its own group, or two groups on each other, would deadlock.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import zenoh

from edabus._exceptions import PublishTimeout
from edabus._logging import get_logger
from edabus._model._wire import PREFIX

from ._bridge import Waker
from ._replies import session_of

if TYPE_CHECKING:
    from ._bridge import Inbox

__all__ = [
    "CHECKPOINT_TIMEOUT",
    "DEFAULT_WINDOW",
    "DEFAULT_WINDOW_BYTES",
    "Checkpoints",
    "Window",
    "wait_for_credit",
]

log = get_logger(__name__)

# Measured through a router with a fast actor (row 3 of `python -m benchmarks`, the order of
# the variants rotated; docs/benchmarks.md): against no credit, a window of 1,000 cost 19% of
# the rate, 4,000 cost 0-9%, 8,000 3-5%, 16,000 0-2% (within the runs' spread). Larger
# windows let each publisher put more into the inbox; the byte window caps that.
DEFAULT_WINDOW = 16_000
DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024
CHECKPOINT_TIMEOUT = 10.0  # a checkpoint held this long (a stuck group) is sent again

_ACK, _RETRY, _GONE = 0, 1, 2
_HELD = 0.9  # a checkpoint that ends unanswered this far into its timeout was held, not lost


class Window:
    """What one bus sent to one group on one node, and how much of it the node has taken in."""

    __slots__ = (
        "_room",
        "_session",
        "_stopped",
        "_trusted",
        "_waker",
        "acked",
        "acked_bytes",
        "checkpoints",
        "closed",
        "forgiven",
        "key",
        "limit",
        "limit_bytes",
        "marked",
        "marked_bytes",
        "sent",
        "sent_bytes",
        "waits",
    )

    def __init__(
        self,
        session: zenoh.Session,
        waker: Waker,
        key: str,
        *,
        limit: int,
        limit_bytes: int,
        trusted: str | None,
        stopped: Callable[[], bool],
    ) -> None:
        self._session = session  # the bus's, which asks the checkpoints
        self._stopped = stopped  # whether the bus closed
        self._waker = waker
        self.key = key  # the node's checkpoint queryable for the group
        self._trusted = trusted  # the Zenoh session that proved the node: only its answers count
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.sent = self.sent_bytes = 0
        self.acked = self.acked_bytes = 0
        self.marked = self.marked_bytes = 0  # counts at the last checkpoint sent
        self.closed = False
        self._room: anyio.Event | None = None
        self.checkpoints = 0  # statistics, for tests and benchmarks
        self.waits = 0
        self.forgiven = 0

    def full(self) -> bool:
        """Whether the window is spent (a message may wait for room; one is always let through alone)."""
        out = self.sent - self.acked
        return not self.closed and (
            out >= self.limit or (out > 0 and self.sent_bytes - self.acked_bytes >= self.limit_bytes)
        )

    def count(self, size: int) -> None:
        """A message of ``size`` bytes was sent; checkpoint after every half window."""
        self.sent += 1
        self.sent_bytes += size
        if self.sent - self.marked >= self.limit >> 1 or self.sent_bytes - self.marked_bytes >= self.limit_bytes >> 1:
            self.checkpoint()

    async def wait_room(self) -> None:
        """Wait until the node has taken in enough for one more message (or the window closed)."""
        self.waits += 1
        while self.full():
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    def close(self) -> None:
        """The node left the group: nothing is held back for it any more."""
        self.closed = True
        self._wake()

    def checkpoint(self) -> None:
        """Ask the node to answer once it has taken in everything sent so far."""
        if self._stopped() or self.closed:
            return
        self.marked, self.marked_bytes = self.sent, self.sent_bytes
        self.checkpoints += 1
        settle = functools.partial(self._settled, self.sent, self.sent_bytes)
        wake = self._waker
        trusted = self._trusted
        answered = False
        timeout = CHECKPOINT_TIMEOUT
        held_until = time.monotonic() + timeout * _HELD

        def on_reply(reply: zenoh.Reply) -> None:  # Zenoh's thread
            nonlocal answered
            if answered:
                return
            zid = session_of(reply)  # None: Zenoh's own timeout (no replier), which says "ask again"
            if trusted is None or zid == trusted or (zid is None and reply.ok is None):
                answered = True
                wake(functools.partial(settle, _ACK if reply.ok is not None else _RETRY))

        def on_final() -> None:  # Zenoh's thread
            if not answered:  # held to the timeout (the router may end it before Zenoh's own error): ask again
                wake(functools.partial(settle, _RETRY if time.monotonic() >= held_until else _GONE))

        try:
            self._session.get(
                self.key,
                zenoh.handlers.Callback(on_reply, on_final, indirect=False),
                # Every reply as it comes, none merged: a stranger's reply could stand in for the node's.
                consolidation=zenoh.ConsolidationMode.NONE,
                timeout=timeout,
            )
        except zenoh.ZError:  # closing: nothing waits on this window for long
            settle(_GONE)

    def _settled(self, sent: int, sent_bytes: int, outcome: int) -> None:
        """A checkpoint's outcome, on the loop."""
        if outcome == _RETRY:  # held past its timeout: the group is stuck, ask again
            if not self.closed and self.acked < sent:
                log.debug("credit.checkpoint_retry", key=self.key, waiting=self.sent - self.acked)
                self.checkpoint()
            return
        if outcome == _GONE:  # no node answered: whatever was in flight is gone with it
            if self.acked < self.sent:
                self.forgiven += 1
            sent, sent_bytes = self.sent, self.sent_bytes
            self.marked, self.marked_bytes = sent, sent_bytes
        if sent > self.acked:
            self.acked, self.acked_bytes = sent, sent_bytes
            self._wake()

    def _wake(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None


async def wait_for_credit(window: Window, deadline: float, what: str) -> None:
    """Wait for room in ``window`` until ``deadline`` (anyio's clock); then `PublishTimeout` naming ``what``."""
    try:
        with anyio.fail_after(deadline - anyio.current_time()):
            await window.wait_room()
    except TimeoutError:
        msg = (
            f"{what} not sent: no credit from {window.key.removeprefix(PREFIX + '/credit/')} "
            f"within the timeout ({window.sent - window.acked} sent and not yet taken in)"
        )
        raise PublishTimeout(msg) from None


class Checkpoints:
    """A node's side for one group: answer each checkpoint once what came before it has left the inbox.

    No item goes into the inbox for a checkpoint: it waits here with the inbox's
    position when it came, and `release` (from the dispatcher after each take, and
    on arrival) answers every checkpoint whose position the dispatcher has taken
    past, in order, while the inbox is below its size.
    """

    def __init__(self, inbox: Inbox[Any]) -> None:
        self._inbox = inbox
        self._waiting: deque[tuple[int, zenoh.Query]] = deque()
        self._lock = threading.Lock()  # released from Zenoh's thread (on arrival) and the loop

    def arrive(self, query: zenoh.Query) -> None:
        """On Zenoh's thread, once the group's lanes were moved into the inbox: note the position."""
        self._waiting.append((self._inbox.pushed, query))
        self.release()

    def release(self) -> None:
        """Answer the checkpoints the dispatcher has taken past, while the inbox is below its size."""
        waiting = self._waiting
        inbox = self._inbox
        if not waiting:
            return
        with self._lock:
            while waiting and waiting[0][0] <= inbox.taken and len(inbox) < inbox.capacity:
                _answer(waiting.popleft()[1])

    @property
    def waiting(self) -> int:
        """Checkpoints not answered yet."""
        return len(self._waiting)

    def drop(self) -> None:
        """The node stops: finish waiting checkpoints without a reply (their senders forgive)."""
        with self._lock:
            while self._waiting:
                self._waiting.popleft()[1].drop()


def _answer(query: zenoh.Query) -> None:
    try:
        query.reply(query.key_expr, b"")
    except zenoh.ZError:
        log.debug("credit.reply_failed", key=str(query.key_expr))
    finally:
        query.drop()
