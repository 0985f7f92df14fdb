"""Following a group's member tokens, so that each change takes effect in the group's inbox order.

A departure is pushed into the group's inbox from Zenoh's thread, so the
arrivals before it are judged with the old members. A join is proven first
(`_proof`: the new member's own session answers for it as a node of the group;
a token nobody answers for is logged once and ignored, and asked again every
lease round), then confirmed with a barrier query to the new member: its reply
leaves the router after the new member's subscriptions were known there, so
every arrival behind the reply also reached the new member, and every arrival
ahead of it is still ours to judge (a query on the data's priority travels
behind that data). Either way the group's intake channel is moved into the inbox
first (`_ingest`), so no earlier arrival is left behind the change.

Every member's session is asked again each lease round (`keep_leases`); one that
stops answering leaves the group here, even while a copy of its token lives on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
import zenoh

from edabus._logging import get_logger
from edabus._model._wire import barrier_key, member_key, parse_member_key
from edabus._transport._ingest import CONTROL

from ._proof import LEASE_INTERVAL, LOST, PROVEN, UNPROVEN, Answers, Lease, ask_identity, identity_of

if TYPE_CHECKING:
    from edabus._transport._bus import Bus

    from ._membership import Membership

__all__ = ["JOIN_BARRIER_TIMEOUT", "MemberWatch", "keep_leases", "proven_members"]

log = get_logger(__name__)

_UNREADABLE_LOGGED = 100  # unreadable token keys logged, at most (a flood of them is not a flood of logs)
JOIN_BARRIER_TIMEOUT = 2.0  # a proven member that does not answer its barrier joins anyway, this much later


class MemberWatch:
    """One group's liveliness subscriber, and how its changes reach the group's inbox."""

    def __init__(
        self,
        bus: Bus,
        membership: Membership,
        *,
        push: Callable[..., None],
        flush: Callable[[], None],
        control: Callable[[Callable[[], None]], None],
        lease: Lease,
        on_rejoin: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self._membership = membership
        self._push = push
        self._flush = flush
        self._control = control
        self._lease = lease
        self._on_rejoin = on_rejoin  # others came back after every one of them had left (a partition healed?)
        self._cut_off = False
        self.app = membership.app
        self._group = f"{membership.app}/{membership.group}"
        self._tokens: dict[str, int] = {}  # node -> GPUs, of every member token alive (proven or not)
        self._unreadable: set[str] = set()  # token keys that are not member tokens (logged once each)
        self._barrier_passed: set[str] = set()  # joins whose barrier came before their proof

    def declare(self) -> Any:
        """Subscribe to the group's member tokens (with the ones alive now)."""
        membership = self._membership
        return self._bus._session.liveliness().declare_subscriber(
            member_key(membership.app, membership.group),
            zenoh.handlers.Callback(self._on_change, indirect=False),
            history=True,
        )

    def _on_change(self, sample: zenoh.Sample) -> None:  # Zenoh's thread
        key = str(sample.key_expr)
        parsed = parse_member_key(key)
        if parsed is None:
            unreadable = self._unreadable
            if sample.kind == zenoh.SampleKind.PUT and key not in unreadable and len(unreadable) < _UNREADABLE_LOGGED:
                unreadable.add(key)
                log.warning("node.member_token_unreadable", token=key, node=self._membership.self_id)
            return
        if parsed[2] == self._membership.self_id:
            return
        node, gpus = parsed[2], parsed[3]
        if sample.kind == zenoh.SampleKind.PUT:
            self._tokens[node] = gpus
            self._control(functools.partial(self._prove, node))
        else:
            self._tokens.pop(node, None)
            self._flush()
            self._push((CONTROL, functools.partial(self._changed, left={node}), None), force=True)

    def _prove(self, node: str) -> None:
        """Ask who answers for a member token's node (then `_proved`), and its barrier at the same time.

        The two go out together, so a join waits one round trip, not two: it is applied
        once the barrier's reply came and the proof is in, whichever is later.
        """
        gpus = self._tokens.get(node)
        if self._bus.closed or gpus is None:
            return
        ask_identity(
            self._bus._session,
            self.app,
            node,
            lambda answers: self._control(functools.partial(self._proved, node, answers)),
        )
        self._confirm_join(node, gpus)

    def _proved(self, node: str, answers: Answers, *, member: bool = False) -> None:
        """A candidate's answers: a join once proven (behind its barrier); else logged once, asked again."""
        gpus = self._tokens.get(node)
        if gpus is None:
            return  # its token went meanwhile
        verdict = self._lease.judge(node, self._group, answers, member=member)
        if verdict == PROVEN:
            if node in self._barrier_passed:  # the barrier came first: join now, behind another one
                self._barrier_passed.discard(node)
                self._confirm_join(node, gpus)
        elif verdict == UNPROVEN:
            self._warn("node.member_unproven", node, "no edabus node of the group answers for this member token")
        elif verdict == LOST:
            self._warn("node.member_lost", node, "its session stopped answering (a token for it may live on)")
            self._barrier_passed.add(node)  # it rejoins behind a new barrier once it answers again
            self._flush()
            self._push((CONTROL, functools.partial(self._changed, left={node}), None), force=True)

    def leased(self) -> Iterable[str]:
        """The nodes to ask this lease round: the other members, and the tokens not proven yet."""
        self_id = self._membership.self_id
        return {m for m in self._membership.members if m != self_id} | (self._lease.unproven & set(self._tokens))

    def renew(self, node: str, answers: Answers) -> None:
        """One lease round's answers for ``node`` (on the loop)."""
        member = node in self._membership.members
        if member or node in self._lease.unproven:
            self._proved(node, answers, member=member)

    def _warn(self, event: str, member: str, reason: str) -> None:
        membership = self._membership
        log.warning(
            event, app=membership.app, group=membership.group, member=member, node=membership.self_id, reason=reason
        )

    def _confirm_join(self, node: str, gpus: int) -> None:
        """Ask the new member for a barrier reply; apply the join in the group's inbox after it."""
        if self._bus.closed:
            return
        change = functools.partial(self._join, node, gpus)

        def on_reply(_reply: zenoh.Reply) -> None:
            pass  # the reply matters only for when it comes: on_final follows it

        def on_final() -> None:  # Zenoh's thread, after the reply (or the timeout)
            self._flush()
            self._push((CONTROL, change, None), force=True)

        self._bus._session.get(
            barrier_key(self._membership.app, node),
            zenoh.handlers.Callback(on_reply, on_final, indirect=False),
            target=zenoh.QueryTarget.ALL,
            timeout=JOIN_BARRIER_TIMEOUT,
        )

    def _join(self, node: str, gpus: int) -> None:
        """In the group's inbox order, behind the new member's barrier: the join, if the member is proven."""
        if self._tokens.get(node) != gpus:
            return  # its token went (or changed) meanwhile
        if node in self._lease.sessions:
            self._changed(joined={node: gpus})
        else:
            self._barrier_passed.add(node)  # `_proved` joins it once the proof is in

    def _changed(self, *, joined: dict[str, int] | None = None, left: set[str] | None = None) -> None:
        membership = self._membership
        for node in left or ():
            if node not in self._tokens:  # its token went: forget it (one that stopped answering is asked again)
                self._lease.drop(node)
                self._barrier_passed.discard(node)
        had_others = len(membership.members) > 1
        if membership.update(joined=joined, left=left):
            log.info(
                "node.members_changed",
                app=membership.app,
                group=membership.group,
                members=list(membership.members),
                owners=list(membership.owners),
                node=membership.self_id,
                joined=sorted(joined or ()),
                left=sorted(left or ()),
            )
            alone = len(membership.members) == 1
            if alone and had_others:
                self._cut_off = True  # every other member left: maybe they did, maybe our link did
            elif self._cut_off and not alone:
                self._cut_off = False
                if self._on_rejoin is not None:  # the others may have served our keys meanwhile
                    self._warn("node.rejoined", ",".join(sorted(joined or ())), "retiring actors that may be stale")
                    self._on_rejoin()


async def proven_members(bus: Bus, app: str, group: str, self_id: str, lease: Lease) -> dict[str, int]:
    """The members of a group alive now whose sessions answer for them (node -> GPUs), proven in ``lease``."""
    tokens = {
        parsed[2]: parsed[3]
        for token in await bus.live_tokens(member_key(app, group))
        if (parsed := parse_member_key(token)) is not None and parsed[2] != self_id
    }
    answers: dict[str, Answers] = {}

    async def ask(node: str) -> None:
        answers[node] = await identity_of(bus, app, node)

    async with anyio.create_task_group() as tg:
        for node in tokens:
            tg.start_soon(ask, node)
    return {node: gpus for node, gpus in tokens.items() if lease.prove(node, f"{app}/{group}", answers[node])}


async def keep_leases(bus: Bus, watches: list[MemberWatch], control: Callable[[Callable[[], None]], None]) -> None:
    """Ask every member's session again each `LEASE_INTERVAL`; its answers (or none) renew its lease."""

    def renewed(app: str, node: str, answers: Answers) -> None:  # Zenoh's thread
        control(functools.partial(_renew_all, [w for w in watches if w.app == app], node, answers))

    while not bus.closed:
        await anyio.sleep(LEASE_INTERVAL)  # a periodic round, not a wait for something to happen
        for app, node in {(watch.app, node) for watch in watches for node in watch.leased()}:
            ask_identity(bus._session, app, node, functools.partial(renewed, app, node))


def _renew_all(watches: list[MemberWatch], node: str, answers: Answers) -> None:
    for watch in watches:
        watch.renew(node, answers)
