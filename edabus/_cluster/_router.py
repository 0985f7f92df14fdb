"""Publisher-side routing: an edabus publisher sends each message straight to its owner's node.

A bus follows every group's member tokens and asks the nodes for their catalogs
(each group's message types with their key patterns, the group's kind and key
field). With those it knows, for a message type, every group that subscribes to
its keys and which member of each owns a given message, and puts the message on
that member's routed key (`route_prefix`) instead of the plain key: a node of a
keyed group of three then receives a third of the traffic, not all of it.

It routes a type only when it knows the whole picture, and otherwise publishes
on the plain key, which every node of every matching group receives and judges
by its own view, as with any raw publisher:

- some live group's catalog has not come (that group might take the type);
- some group's pattern overlaps the type's keys without covering all of them;
- no matching group has more than one member (a plain put already reaches each
  group's one node exactly once, and costs less);
- the message is published on a key other than its own (``key=``).

Nodes still judge routed messages by their own view and pass on what they do
not own (`forward`), so a publisher whose view lags (a member just joined or
left) costs a hop, never a second owner. Requests and reliable messages travel
as queries on the plain key, as before. docs/cluster.md has the contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import zenoh

from edabus._exceptions import EdabusError
from edabus._logging import get_logger
from edabus._model._wire import (
    PREFIX,
    CatalogEntry,
    NodeCatalog,
    catalog_key,
    credit_key,
    parse_member_key,
    parse_node_key,
    routes_barrier_key,
)
from edabus._transport._bridge import Inbox, Waker
from edabus._transport._credit import Window

from ._proof import LEASE_INTERVAL, LOST, PROVEN, UNPROVEN, Answers, Lease, ask_identity
from ._route import GroupRoute

if TYPE_CHECKING:
    from edabus._model._message import Message
    from edabus._transport._bus import Bus

__all__ = ["Router"]

log = get_logger(__name__)

CATALOG_TIMEOUT = 2.0
_RETRY_S = 1.0  # how soon a catalog that did not come is asked for again
_REPLIERS_KEPT = 10_000  # request keys whose trusted repliers are remembered
_HISTORY_WAIT_S = 1.0  # how long a new bus waits for the member tokens of nodes that sent their catalog
_ROUTABLE = ("keyed", "singleton", "pool")
_catalog_decoder = msgspec.msgpack.Decoder(NodeCatalog)

Group = tuple[str, str]  # (app, group)
# A member token came or went; a node's sessions answered who they are; or a barrier query.
Change = tuple[bool, Group, str, int] | tuple[str, str, Answers] | zenoh.Query


class Router:
    """What one bus knows of the groups on the bus, and where it sends each message type."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._tokens: dict[Group, dict[str, int]] = {}  # proven live members (node: GPU count) of every group
        self._seen: dict[Group, dict[str, int]] = {}  # every live member token, proven or not
        self._leases: dict[Group, Lease] = {}
        self._next_round = 0.0  # when the members' sessions are asked again (`_proof`)
        self._catalogs: dict[Group, list[CatalogEntry]] = {}  # what each group takes, from any of its nodes
        self._routes: dict[Group, GroupRoute] = {}  # the live groups whose catalog came
        self._plans: dict[type[Message], tuple[GroupRoute, ...] | None] = {}
        self._credited: dict[type[Message], tuple[Window, ...]] = {}
        self._repliers: dict[str, frozenset[str] | None] = {}  # by request key (`repliers`)
        self._changes: Inbox[Change] = Inbox(65_536, name="routes")
        self._declared: list[Any] = []
        self._waker: Waker | None = None
        self.enabled = False
        self.routing = True  # False: follow the groups (for credit) but always publish on plain keys

    def plan(self, cls: type[Message]) -> tuple[GroupRoute, ...] | None:
        """The groups to route a message of type ``cls`` to; None: publish it on its plain key."""
        try:
            return self._plans[cls]
        except KeyError:
            plan = self._plans[cls] = self._plan(cls)
            return plan

    def apps(self) -> list[str]:
        """The apps with a live member: where a tool's per-app question goes (``*`` until the bus follows)."""
        return sorted({app for app, _ in self._tokens}) if self.enabled else ["*"]

    def members(self) -> dict[Group, list[str]]:
        """The live members (node ids) of every group: member tokens a node's session answers for."""
        return {group: sorted(nodes) for group, nodes in self._tokens.items()}

    def repliers(self, key: str) -> frozenset[str] | None:
        """The sessions that may answer a request on ``key``: the proven members of the groups that serve it.

        None (anyone may answer) where no known group serves the key (a raw queryable may
        serve keys of its own), while a proven group's catalog has not come, and while a
        member token of a serving group waits for its first answer (a node that just
        started; at most `PROOF_TIMEOUT`). A token nobody answers for changes nothing.
        """
        if not self.enabled:
            return None
        try:
            return self._repliers[key]
        except KeyError:
            pass
        if len(self._repliers) >= _REPLIERS_KEPT:
            self._repliers.clear()
        found = self._repliers[key] = self._repliers_of(key)
        return found

    def _repliers_of(self, key: str) -> frozenset[str] | None:
        if any(group not in self._routes for group in self._tokens):
            return None  # a proven group whose catalog has not come might serve the key: any reply counts meanwhile
        try:
            wanted = zenoh.KeyExpr(key)
        except zenoh.ZError:
            return None
        sessions: set[str] = set()
        for group, route in self._routes.items():
            if any(pattern.intersects(wanted) for pattern in route.patterns):
                lease = self._leases.get(group)
                members = route.membership.members
                if lease is None or any(node not in lease.sessions for node in members):
                    return None
                if any(node not in lease.sessions and node not in lease.unproven for node in self._seen.get(group, ())):
                    return None  # a token whose first answer is still on its way (a node just started)
                sessions.update(lease.sessions[node] for node in members)
        return frozenset(sessions) if sessions else None

    def entries(self) -> list[CatalogEntry]:
        """The catalog entries of every live group whose catalog came (for tools: what a key's type is)."""
        return [entry for group in self._routes for entry in self._catalogs.get(group, ())]

    def windows(self, cls: type[Message]) -> tuple[Window, ...]:
        """The credit windows a message of type ``cls`` on its plain key counts against.

        Every remote member of every known group whose patterns meet the type's: each
        of them hears a plain put (and lets pass what it does not own, which frees its
        credit at once).
        """
        try:
            return self._credited[cls]
        except KeyError:
            windows = self._credited[cls] = self._windows_of(cls)
            return windows

    def _windows_of(self, cls: type[Message]) -> tuple[Window, ...]:
        template = cls.__edabus_key__
        if not self.enabled or template is None:
            return ()
        pattern = zenoh.KeyExpr(template.pattern)
        return tuple(
            window
            for route in self._routes.values()
            if route.covers(pattern) is not False
            for window in route.windows.values()
        )

    def _new_window(self, app: str, group: str, limit: int, limit_bytes: int, node: str) -> Window | None:
        """A credit window for a remote member, where its node grants credit (an older one does not)."""
        if node == self._bus.node_id or limit < 1 or limit_bytes < 1:
            return None
        if self._waker is None:
            self._waker = Waker()  # made on the loop, where the windows are settled
        lease = self._leases.get((app, group))
        session = None if lease is None else lease.sessions.get(node)
        bus = self._bus
        return Window(
            bus._session,
            self._waker,
            credit_key(app, group, node),
            limit=limit,
            limit_bytes=limit_bytes,
            trusted=session,
            stopped=lambda: bus.closed,
        )

    def _plan(self, cls: type[Message]) -> tuple[GroupRoute, ...] | None:
        template = cls.__edabus_key__
        if (
            not self.enabled
            or not self.routing
            or template is None
            or cls.__edabus_reliable__
            or len(self._routes) < len(self._tokens)
        ):
            return None
        pattern = zenoh.KeyExpr(template.pattern)
        matched = []
        for route in self._routes.values():
            covered = route.covers(pattern)
            if covered is None or (covered and route.kind not in _ROUTABLE):
                return None
            if covered:
                matched.append(route)
        if not any(len(route.membership.members) > 1 for route in matched):
            return None
        return tuple(matched)

    # -- following the groups, on the loop ---------------------------------------------------

    async def start(self) -> None:
        """Follow the member tokens, ask every node's catalog, take what came; then route.

        Only the subscriber's history is trusted for the tokens alive now: a liveliness
        get sent after it is declared is answered from its (still empty) local view.
        The history travels ahead of the catalog replies; what comes later is applied
        by `run`, and until a group is complete its types go on their plain keys.
        """
        session = self._bus._session
        self._declared = [
            session.liveliness().declare_subscriber(
                f"{PREFIX}/member/**", zenoh.handlers.Callback(self._on_token, indirect=False), history=True
            ),
            session.declare_queryable(
                routes_barrier_key(self._bus.node_id), zenoh.handlers.Callback(self._changes.push, indirect=False)
            ),
        ]
        hosted = await self._ask_catalogs(catalog_key("*", "*"))
        with anyio.move_on_after(_HISTORY_WAIT_S):  # the tokens of the groups that answered
            while any(node not in self._tokens.get(group, ()) for group, node in hosted):
                self._apply(await self._changes.get_batch())
        self.enabled = True
        self._forget_plans()

    def close(self) -> None:
        """Stop following (the bus is closing)."""
        self.enabled = False
        self._changes.close()
        for route in self._routes.values():
            route.close()
        self._forget_plans()
        # Never ask `session.is_closed()` here: it waits for the session's lock while
        # holding the GIL, and a Zenoh thread that holds that lock to run one of our
        # callbacks waits for the GIL (a deadlock, seen in CI). Undeclaring on a closed
        # session is a no-op.
        for entity in self._declared:
            entity.undeclare()
        self._declared.clear()

    def _on_token(self, sample: zenoh.Sample) -> None:  # Zenoh's thread
        parsed = parse_member_key(str(sample.key_expr))
        if parsed is not None:
            joined = sample.kind == zenoh.SampleKind.PUT
            self._changes.push((joined, (parsed[0], parsed[1]), parsed[2], parsed[3]))

    async def run(self) -> None:
        """Apply member changes as they come; ask for the catalogs of groups not known yet; keep the leases."""
        while True:
            with anyio.move_on_after(_RETRY_S):
                batch = await self._changes.get_batch()
                if not batch:
                    return  # closed
                self._apply(batch)
            if anyio.current_time() >= self._next_round:
                self._next_round = anyio.current_time() + LEASE_INTERVAL
                leased = {(group[0], node) for group, members in self._tokens.items() for node in members}
                leased |= {
                    (group[0], node)
                    for group, lease in self._leases.items()
                    for node in lease.unproven & set(self._seen.get(group, ()))
                }
                for app, node in leased:
                    self._ask(app, node)
            unknown = {
                (group[0], node) for group, nodes in self._tokens.items() if group not in self._routes for node in nodes
            }
            for app, node in sorted(unknown):
                await self._ask_catalogs(catalog_key(app, node))

    def _apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            if isinstance(change, zenoh.Query):  # after every change that came before it
                _answer(change, routes_barrier_key(self._bus.node_id))
            elif len(change) == 3:  # noqa: PLR2004 - a node's answers for one app
                self._answered(*change)
            else:
                joined, group, node, gpus = change
                seen = self._seen.setdefault(group, {})
                if joined:
                    seen[node] = gpus
                    if self._tokens.get(group, {}).get(node) != gpus:
                        self._ask(group[0], node)  # it counts once its session answers for it
                        self._repliers.clear()  # meanwhile, any reply counts for its group's keys
                else:
                    seen.pop(node, None)
                    if not seen:
                        del self._seen[group]
                    if group in self._leases:
                        self._leases[group].drop(node)
                    self._remove(group, node)
        self._complete()

    def _ask(self, app: str, node: str) -> None:
        """Ask who answers for ``node`` in ``app``; the answers come back as a change."""
        if not self._bus.closed:
            ask_identity(self._bus._session, app, node, lambda answers: self._changes.push((app, node, answers)))

    def _answered(self, app: str, node: str, answers: Answers) -> None:
        """Prove (or renew) ``node`` in every group of ``app`` it holds a token of."""
        for group, seen in self._seen.items():
            gpus = seen.get(node)
            if gpus is None or group[0] != app:
                continue
            member = node in self._tokens.get(group, ())
            verdict = self._leases.setdefault(group, Lease()).judge(node, f"{app}/{group[1]}", answers, member=member)
            if verdict == PROVEN:
                self._add(group, node, gpus)
            elif verdict == LOST:
                log.warning("bus.member_lost", app=app, group=group[1], member=node)
                self._remove(group, node)
            elif verdict == UNPROVEN:
                log.warning("bus.member_unproven", app=app, group=group[1], member=node)
                self._repliers.clear()  # judged: it no longer holds the group's replies open

    def _add(self, group: Group, node: str, gpus: int) -> None:
        self._tokens.setdefault(group, {})[node] = gpus
        route = self._routes.get(group)
        if route is not None:
            route.update(joined={node: gpus})
        self._forget_plans()

    def _remove(self, group: Group, node: str) -> None:
        members = self._tokens.get(group)
        if members is None or members.pop(node, None) is None:
            return
        route = self._routes.get(group)
        if route is not None:
            route.update(left={node})
        if not members:
            del self._tokens[group]
            gone = self._routes.pop(group, None)
            if gone is not None:
                gone.close()
        self._forget_plans()

    def _forget_plans(self) -> None:
        """The groups or their members changed: plans, credit lists and repliers are made again when next used."""
        self._plans.clear()
        self._credited.clear()
        self._repliers.clear()

    def _complete(self) -> None:
        """Make the route of every live group whose catalog came."""
        for group, members in self._tokens.items():
            entries = self._catalogs.get(group)
            if entries and group not in self._routes:
                route = self._routes[group] = GroupRoute(*group, entries, self._new_window)
                route.update(joined=dict(members))
                self._forget_plans()

    async def _ask_catalogs(self, selector: str) -> set[tuple[Group, str]]:
        """Ask nodes for their catalogs; the (group, node) pairs they answered for."""
        hosted: set[tuple[Group, str]] = set()
        try:
            replies = await self._bus.query(selector, timeout=CATALOG_TIMEOUT)
        except EdabusError:
            return hosted
        for reply in replies:
            if reply.ok is None:
                continue
            key = str(reply.ok.key_expr)
            source = parse_node_key(key)
            try:
                catalog = _catalog_decoder.decode(reply.ok.payload.to_bytes())
            except Exception:  # noqa: BLE001 - a hostile reply may raise anything (RecursionError...)
                log.warning("bus.catalog_unreadable", key=key)
                continue
            if source is None or source[1] != catalog.node:
                continue
            by_group: dict[Group, list[CatalogEntry]] = {}
            for entry in catalog.entries:
                if entry.app == source[0]:  # a node speaks for the app whose key it answered on, only
                    by_group.setdefault((entry.app, entry.group), []).append(entry)
            self._catalogs.update(by_group)  # the same app's groups declare the same types everywhere
            hosted.update((group, catalog.node) for group in by_group)
        self._complete()
        return hosted


def _answer(query: zenoh.Query, key: str) -> None:
    try:
        query.reply(key, b"")
    except zenoh.ZError:
        log.debug("bus.reply_failed", key=str(query.key_expr))
    finally:
        query.drop()
