"""Proof of membership: a member token counts once the node's own session answers for it.

On an open bus any client may declare a liveliness token shaped like a node's
member token (``@edabus/member/{app}/{group}/{node}/gpus/{n}``), for a node that
does not exist or as a copy of a live node's. A token alone proves nothing, so:

- Every node answers on ``@edabus/identity/{app}/{node}``, for each app it hosts
  (on Zenoh's thread, so a busy event loop does not delay it), with a
  `NodeIdentity`: its id and the app's groups it hosts. Zenoh stamps each reply
  with the replier's session id.
- Peers (other nodes, and publishers that route) count a member only once an
  identity reply for its node names its group; they remember the session id
  that answered.
- The lease: they keep asking, every `LEASE_INTERVAL`. A member whose
  session has not answered for `LEASE_MISSES` rounds in a row is taken as
  gone, even while a token for it lives on (a copy outlives its node).

What this cannot stop on an open bus: a client that also declares a queryable
and answers as an edabus node. docs/security.md says what does (a closed bus).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import msgspec
import zenoh

from edabus._exceptions import DuplicateNodeError
from edabus._logging import get_logger
from edabus._model._wire import NodeIdentity, identity_key
from edabus._transport._replies import session_of

if TYPE_CHECKING:
    from edabus._transport._bus import Bus

__all__ = [
    "AWAY_S",
    "KEPT",
    "LEASE_INTERVAL",
    "LEASE_MISSES",
    "LOST",
    "PROOF_TIMEOUT",
    "PROVEN",
    "UNPROVEN",
    "Answers",
    "Heartbeat",
    "Lease",
    "ask_identity",
    "check_unique",
    "declare_identities",
    "declare_identity",
    "identity_of",
    "identity_reply",
]

log = get_logger(__name__)

PROOF_TIMEOUT = 2.0  # how long an identity question waits for answers
LEASE_INTERVAL = 1.0  # how often each member is asked again
LEASE_MISSES = 8  # rounds unanswered by a member's session before it counts as gone: 9-10 s, as Zenoh's own lease

_identity_decoder = msgspec.msgpack.Decoder(NodeIdentity)

Answers = dict[str, frozenset[str]]  # session id -> the groups ("app/group") it says it hosts


def identity_reply(node: str, groups: list[str]) -> bytes:
    """What a node answers on its identity queryable."""
    return msgspec.msgpack.encode(NodeIdentity(node=node, groups=groups))


def ask_identity(session: zenoh.Session, app: str, node: str, done: Callable[[Answers], None]) -> None:
    """Ask who answers for ``node`` in ``app`` (``*``: any app); ``done`` gets every answering session's groups.

    ``done`` runs on Zenoh's thread.

    A reply counts only if it decodes, names ``node`` and carries a replier id;
    anything else (a hostile or foreign reply) is left out.
    """
    answers: Answers = {}
    try:
        session.get(
            identity_key(app, node),
            zenoh.handlers.Callback(functools.partial(_read, node, answers), lambda: done(answers), indirect=False),
            target=zenoh.QueryTarget.ALL,
            # Every reply, none merged: replies on one key are otherwise consolidated, and a
            # hostile one could shadow the node's own.
            consolidation=zenoh.ConsolidationMode.NONE,
            timeout=PROOF_TIMEOUT,
        )
    except zenoh.ZError:  # the session is closing
        done({})


def _read(node: str, answers: Answers, reply: zenoh.Reply) -> None:
    """Note one identity reply for ``node`` in ``answers`` (hostile or foreign replies are left out)."""
    zid = session_of(reply)
    if reply.ok is None or zid is None:
        return
    try:
        identity = _identity_decoder.decode(reply.ok.payload.to_bytes())
    except Exception:  # noqa: BLE001 - anything on the bus may be hostile
        return
    if identity.node == node:
        answers[zid] = frozenset(identity.groups)


KEPT, LOST, PROVEN, UNPROVEN, STILL_UNPROVEN = "kept", "lost", "proven", "unproven", "still unproven"


class Lease:
    """The session that proved each member node of one group, its unanswered rounds, and the unproven tokens."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}  # node -> the session id that proved it
        self.unproven: set[str] = set()  # tokens nobody answers for (to log once, and to ask again)
        self._misses: dict[str, int] = {}

    def judge(self, node: str, group: str, answers: Answers, *, member: bool) -> str:
        """What ``answers`` mean for ``node``: a member `KEPT` or `LOST`; a candidate `PROVEN` or not.

        `UNPROVEN` the first time a candidate is not proven (log it), `STILL_UNPROVEN` after.
        A lost member and an unproven candidate are asked again each round.
        """
        if member:
            if self.renew(node, answers):
                return KEPT
            self.forget(node)
            self.unproven.add(node)
            return LOST
        if self.prove(node, group, answers):
            self.unproven.discard(node)
            return PROVEN
        if node in self.unproven:
            return STILL_UNPROVEN
        self.unproven.add(node)
        return UNPROVEN

    def prove(self, node: str, group: str, answers: Answers) -> bool:
        """Whether ``answers`` prove ``node`` a member of ``group``; if so, remember the session that did."""
        for zid, groups in sorted(answers.items()):
            if group in groups:
                if self.sessions.get(node) not in answers:  # keep the first prover while it answers
                    self.sessions[node] = zid
                self._misses[node] = 0
                return True
        return False

    def renew(self, node: str, answers: Answers) -> bool:
        """One lease round for ``node``: False once its session has missed `LEASE_MISSES` rounds."""
        zid = self.sessions.get(node)
        if zid is None:
            return False
        if zid in answers:
            self._misses[node] = 0
            return True
        misses = self._misses[node] = self._misses.get(node, 0) + 1
        return misses < LEASE_MISSES

    def forget(self, node: str) -> None:
        """The node's lease ended (its token went, or its session stopped answering)."""
        self.sessions.pop(node, None)
        self._misses.pop(node, None)

    def drop(self, node: str) -> None:
        """The node's token went: forget everything about it."""
        self.forget(node)
        self.unproven.discard(node)


async def identity_of(bus: Bus, app: str, node: str) -> Answers:
    """Ask who answers for ``node`` in ``app`` and wait for the answers (at most `PROOF_TIMEOUT`)."""
    answers: Answers = {}
    for reply in await bus.query(identity_key(app, node), timeout=PROOF_TIMEOUT):
        _read(node, answers, reply)
    return answers


def declare_identity(session: zenoh.Session, app: str, node: str, groups: list[str]) -> zenoh.Queryable[None]:
    """Answer for ``node`` in ``app`` (its ``groups``), at once on Zenoh's thread (a busy loop does not delay it)."""
    payload = identity_reply(node, groups)
    key = identity_key(app, node)

    def on_query(query: zenoh.Query) -> None:
        try:
            query.reply(key, payload)
        except zenoh.ZError:
            log.debug("node.reply_failed", kind="identity")
        finally:
            query.drop()

    return session.declare_queryable(key, zenoh.handlers.Callback(on_query, indirect=False))


def declare_identities(
    session: zenoh.Session, node: str, groups: Iterable[tuple[str, str]]
) -> list[zenoh.Queryable[None]]:
    """One identity queryable per app among ``groups`` ((app, group) pairs), each naming that app's groups."""
    by_app: dict[str, list[str]] = {}
    for app, group in groups:
        by_app.setdefault(app, []).append(f"{app}/{group}")
    return [declare_identity(session, app, node, names) for app, names in by_app.items()]


async def check_unique(bus: Bus, node: str) -> None:
    """Raise `DuplicateNodeError` if a live session already answers for ``node``."""
    answers = await identity_of(bus, "*", node)
    if answers:
        msg = (
            f"node id {node!r} is already live on this bus (session {min(answers)} answers for it); "
            "two nodes under one id would both take the same keys: give each node its own id"
        )
        raise DuplicateNodeError(msg)


AWAY_S = LEASE_INTERVAL * LEASE_MISSES  # a process stopped this long may have been taken as gone by its peers
_BEAT_S = 0.25


class Heartbeat:
    """Notices that this process was stopped (SIGSTOP, a frozen VM) long enough for its peers to drop it.

    A thread ticks every quarter second; a gap longer than `AWAY_S` between two
    ticks (or between the last tick and `check`) counts one resumption. The
    dispatchers compare `check()` with the count they last saw, before each batch.
    """

    def __init__(self) -> None:
        self.resumes = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edabus-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> int:
        """The resumptions so far (this call counts one if the last tick is too long ago)."""
        self._tick()
        return self.resumes

    def _run(self) -> None:
        while not self._stop.wait(_BEAT_S):
            self._tick()

    def _tick(self) -> None:
        with self._lock:
            now = time.monotonic()
            away = now - self._last
            self._last = now
            if away > AWAY_S:
                self.resumes += 1
                log.warning("node.resumed", away_s=round(away, 1), reason="this process was stopped past the lease")
