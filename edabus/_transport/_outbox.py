"""At-least-once sending: reliable messages kept until their owner acknowledges them.

A reliable message travels as a Zenoh query to the group that owns its key; the
owner replies once the handler returned and the actor's state was saved. The
sender numbers its reliable messages per key (`Meta.seq`, one more each time;
a key's first starts above every number the sender used) and keeps each
one in its key's *lane* until acknowledged. When an attempt ends without an
acknowledgement (no owner answered, the owner died, the timeout passed, or the
owner refused it as out of order or unsaved), the lane resends every message it
still holds, in order, after a backoff: the owner drops the ones it already
applied, so each is applied once and in the order sent.

An error from the handler itself is final: the message was handled (and
dead-lettered by its owner); it is not sent again.

With an `OutboxStore` (``edabus.connect(..., outbox=edabus.SQLiteOutbox(path))``)
the outbox outlives its process: a message is written there before ``publish``
returns and removed once its owner answered, and a bus that opens the same store
sends again, in order, what a predecessor kept. It sends as the store's own
sender id, with the store's numbering, so the owners drop what they had applied.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

import anyio
import msgspec
import zenoh

from edabus._exceptions import Undelivered
from edabus._logging import get_logger
from edabus._model._wire import ErrorReply, Meta, encode_meta

from ._bridge import Waker
from ._replies import session_of

if TYPE_CHECKING:
    from anyio.abc import TaskGroup


__all__ = ["DEFAULT_ACK_TIMEOUT", "DEFAULT_MAX_UNACKED", "RETRYABLE", "Kept", "KeptMessage", "Outbox", "OutboxStore"]

log = get_logger(__name__)

DEFAULT_ACK_TIMEOUT = 5.0
DEFAULT_MAX_UNACKED = 10_000
_RETRY_MIN_S = 0.02
_RETRY_MAX_S = 1.0
_LANES_KEPT = 100_000  # idle lanes forgotten beyond this (a new lane starts above every seq used)

# Errors from the framework, not from the handler: the message was not applied, send it again.
RETRYABLE = frozenset(
    {
        "OutOfOrder",
        "StaleStateError",
        "StateError",
        "StateStoreError",
        "ActorStopped",
        "MailboxFull",
        "InboxOverflow",
        "NoRouteError",
    }
)
_error_decoder = msgspec.msgpack.Decoder(ErrorReply)

_ACK, _RETRY, _FAILED = 0, 1, 2


class KeptMessage(NamedTuple):
    """A reliable message in an `OutboxStore`: its key, number, payload, type name and trace."""

    key: str
    seq: int
    payload: bytes
    type_name: str
    trace: str


class Kept(NamedTuple):
    """What an `OutboxStore` holds: its sender id, the highest number it gave, the messages not acknowledged."""

    sender: str
    high: int
    messages: list[KeptMessage]


class OutboxStore(Protocol):
    """Where a bus keeps its reliable messages until their owners acknowledge them (`SQLiteOutbox`)."""

    async def open(self) -> Kept:
        """Get ready; what a predecessor left, in the order it sent it (by key, then number)."""
        ...

    async def add(self, message: KeptMessage, high: int) -> None:
        """Keep ``message`` (and ``high``, the highest number given so far); durable on return."""
        ...

    async def remove(self, answered: Sequence[tuple[str, int]]) -> None:
        """Their owners answered: forget these messages (by key and number)."""
        ...

    async def close(self) -> None:
        """Finish what was asked and release the store."""
        ...


@dataclass(slots=True)
class _Entry:
    seq: int
    payload: bytes
    type_name: str
    trace: str
    attempt: int = 0


@dataclass(slots=True)
class _Lane:
    key: str
    next_seq: int = 1
    pending: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)
    retrying: bool = False
    backoff: float = _RETRY_MIN_S


class Outbox:
    """The reliable messages of one bus that are not acknowledged yet, by key."""

    def __init__(
        self,
        session: zenoh.Session,
        tg: TaskGroup,
        *,
        meta: Callable[[str, str], Meta],
        trusted: Callable[[str], frozenset[str] | None],
        sent: Callable[[], None],
        stopped: Callable[[], bool],
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        max_unacked: int = DEFAULT_MAX_UNACKED,
    ) -> None:
        """Made by its bus, from the parts of it the outbox uses.

        ``session`` and ``tg`` are the bus's; ``meta`` gives the next message's metadata;
        ``trusted`` the sessions that may acknowledge on a key (None: anyone); ``sent``
        notes that something left that a close must drain; ``stopped`` says whether
        the bus closed.
        """
        self._session = session
        self._meta = meta
        self._trusted = trusted
        self._sent = sent
        self._stopped = stopped
        self._tg = tg
        self._store: OutboxStore | None = None  # `restore` sets it: kept through a crash
        self._sender = ""  # the store's sender id, in place of the bus's
        self._answered: list[tuple[str, int]] = []  # to forget in the store, in one write
        self._answers = anyio.Event()
        self.ack_timeout = ack_timeout
        self.max_unacked = max_unacked
        self._lanes: OrderedDict[str, _Lane] = OrderedDict()
        self._waker = Waker()
        self._high = 0  # the highest seq given out, on any lane
        self.unacked = 0
        self.sent = 0
        self.resent = 0
        self.acked = 0
        self.failed = 0
        self._room: anyio.Event | None = None
        self._empty: anyio.Event | None = None
        self._retries: list[tuple[float, int, _Lane]] = []  # a heap of (due, order, lane)
        self._order = itertools.count()
        self._retry_added = anyio.Event()
        tg.start_soon(self._resend_when_due)

    async def send(self, key: str, payload: bytes, type_name: str, trace: str, *, wait: bool = True) -> None:
        """Keep the message and send it; waits while ``max_unacked`` messages are unacknowledged.

        ``wait=False`` (a handler's publish) keeps it at once, even past ``max_unacked``:
        a handler waiting for acknowledgements could be waiting on its own group.
        """
        while wait and self.unacked >= self.max_unacked:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
        lane = self._lanes.get(key)
        if lane is None:
            # A new lane (or one forgotten) starts above every number used so far, with
            # base = its first seq: no owner can mistake it for an old message of this key.
            lane = self._lanes[key] = _Lane(key, next_seq=self._high + 1)
            self._forget_idle_lanes()
        entry = _Entry(lane.next_seq, payload, type_name, trace)
        lane.next_seq += 1
        self._high = max(self._high, entry.seq)
        lane.pending[entry.seq] = entry
        self.unacked += 1
        self.sent += 1
        if self._store is not None:  # durable before it leaves, and before publish returns
            await self._store.add(KeptMessage(key, entry.seq, payload, type_name, trace), self._high)
        if not lane.retrying:
            self._transmit(lane, entry)

    def restore(self, store: OutboxStore, kept: Kept) -> int:
        """Keep messages in ``store`` (opened) from now on, and send again what it ``kept``; how many."""
        self._store = store
        self._tg.start_soon(self._forget_answered, store)
        self._sender = kept.sender
        self._high = max(self._high, kept.high)
        lanes: list[_Lane] = []
        for message in kept.messages:
            lane = self._lanes.get(message.key)
            if lane is None:
                lane = self._lanes[message.key] = _Lane(message.key)
                lanes.append(lane)
            lane.pending[message.seq] = _Entry(message.seq, message.payload, message.type_name, message.trace)
            self.unacked += 1
        for lane in lanes:
            # Above every number given, answered ones included: the owner may have applied a later one.
            lane.next_seq = self._high + 1
            self._resend(lane)
        return len(kept.messages)

    async def wait_delivered(self, timeout: float) -> None:
        """Wait until every reliable message was acknowledged.

        Raises:
            Undelivered: some were not within ``timeout`` seconds.

        """
        with anyio.move_on_after(timeout):
            while self.unacked:
                if self._empty is None:
                    self._empty = anyio.Event()
                await self._empty.wait()
        if self.unacked:
            msg = f"{self.unacked} reliable message(s) not acknowledged within {timeout} s"
            raise Undelivered(msg)

    def _forget_idle_lanes(self) -> None:
        while len(self._lanes) > _LANES_KEPT:
            key, lane = next(iter(self._lanes.items()))
            if lane.pending:
                self._lanes.move_to_end(key)
                return
            del self._lanes[key]

    def _transmit(self, lane: _Lane, entry: _Entry) -> None:
        """One attempt: a query to the owner; its outcome comes back on the loop thread."""
        if self._stopped():
            return
        entry.attempt += 1
        meta = self._meta(entry.type_name, entry.trace)
        sender = self._sender or meta.sender
        meta = Meta(meta.type, meta.id, sender, meta.trace, meta.sent, entry.seq, next(iter(lane.pending)))
        outcome = functools.partial(self._settled, lane, entry.seq, entry.attempt)
        done = False
        wake = self._waker
        trusted = self._trusted(lane.key)  # where a group serves the key, only its members acknowledge

        def on_reply(reply: zenoh.Reply) -> None:  # Zenoh's thread
            nonlocal done
            if done or (trusted is not None and session_of(reply) not in trusted):
                return
            if reply.ok is not None:
                done = True
                wake(functools.partial(outcome, _ACK, ""))
                return
            try:
                error = _error_decoder.decode(reply.err.payload.to_bytes())  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - not an edabus error (maybe hostile): wait for the final
                return
            done = True
            kind = _RETRY if error.type in RETRYABLE else _FAILED
            wake(functools.partial(outcome, kind, f"{error.type}: {error.message}"))

        def on_final() -> None:  # Zenoh's thread
            if not done:
                wake(functools.partial(outcome, _RETRY, "no owner acknowledged"))

        try:
            self._session.get(
                lane.key,
                zenoh.handlers.Callback(on_reply, on_final, indirect=False),
                target=zenoh.QueryTarget.ALL,
                consolidation=zenoh.ConsolidationMode.NONE,
                timeout=self.ack_timeout,
                payload=entry.payload,
                attachment=encode_meta(meta),
            )
        except zenoh.ZError as exc:  # the session is closing, or the link is down: try again later
            self._settled(lane, entry.seq, entry.attempt, _RETRY, repr(exc))
        else:
            self._sent()

    def _settled(self, lane: _Lane, seq: int, attempt: int, kind: int, error: str) -> None:
        """An attempt's outcome, on the loop thread."""
        entry = lane.pending.get(seq)
        if entry is None or entry.attempt != attempt:
            return  # acknowledged already, or a newer attempt is on its way
        if kind == _RETRY:
            if not lane.retrying:
                lane.retrying = True
                log.debug("reliable.retrying", key=lane.key, seq=seq, reason=error, backoff=lane.backoff)
                heapq.heappush(self._retries, (time.monotonic() + lane.backoff, next(self._order), lane))
                self._retry_added.set()
            return
        del lane.pending[seq]
        self.unacked -= 1
        if self._store is not None:
            self._answered.append((lane.key, seq))
            self._answers.set()
        lane.backoff = _RETRY_MIN_S
        if kind == _ACK:
            self.acked += 1
        else:
            self.failed += 1
            log.warning("reliable.failed", key=lane.key, seq=seq, error=error)
        if self._room is not None and self.unacked < self.max_unacked:
            self._room.set()
            self._room = None
        if self._empty is not None and not self.unacked:
            self._empty.set()
            self._empty = None

    async def _forget_answered(self, store: OutboxStore) -> None:
        """The durable outbox's task: forget what owners answered, a batch per write.

        A message answered but not yet forgotten when the process dies is sent again
        by the next bus on the store; its owner drops it as already applied.
        """
        while True:
            await self._answers.wait()
            self._answers = anyio.Event()
            answered, self._answered = self._answered, []
            await store.remove(answered)

    async def _resend_when_due(self) -> None:
        """The outbox's one task: resend each lane that failed, once its backoff has passed."""
        retries = self._retries
        while True:
            if not retries:
                self._retry_added = anyio.Event()
                await self._retry_added.wait()
                continue
            due, _, lane = retries[0]
            wait = due - time.monotonic()
            if wait > 0:
                self._retry_added = anyio.Event()
                with anyio.move_on_after(wait):
                    await self._retry_added.wait()  # an earlier retry may have been added
                continue
            heapq.heappop(retries)
            self._resend(lane)

    def _resend(self, lane: _Lane) -> None:
        """Send again everything the lane holds, in order; back off further next time."""
        lane.backoff = min(lane.backoff * 2, _RETRY_MAX_S)
        lane.retrying = False
        for entry in list(lane.pending.values()):
            self.resent += 1
            self._transmit(lane, entry)
