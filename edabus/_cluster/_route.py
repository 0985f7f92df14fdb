"""One group as a publisher sees it (`GroupRoute`), and a node passing on a routed message (`forward`).

A routed message travels on its owner's prefix (`route_prefix`) followed by its
own key; `_router` decides which groups a message type goes to, and this module
which member of one group takes a given message.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import msgspec
import zenoh

from edabus._exceptions import EdabusError, NoRouteError
from edabus._model._wire import CatalogEntry, encode_meta, route_prefix

from ._membership import Membership

if TYPE_CHECKING:
    from edabus._model._envelope import Envelope
    from edabus._model._message import Message
    from edabus._transport._bus import Bus
    from edabus._transport._credit import Window

__all__ = ["MAX_HOPS", "GroupRoute", "WindowFactory", "forward"]

MAX_HOPS = 3  # a routed message passed on this often is dead-lettered: the members' views disagree

WindowFactory = Callable[[str, str, int, int, str], "Window | None"]  # (app, group, limit, bytes, node)


class GroupRoute:
    """One group as a publisher sees it: its key patterns, its kind, its members, their credit windows."""

    def __init__(self, app: str, group: str, entries: Iterable[CatalogEntry], windows: WindowFactory) -> None:
        entries = list(entries)
        first = entries[0]
        self.app = app
        self.group = group
        self.kind = first.kind
        self.field = first.field
        self.patterns = [zenoh.KeyExpr(entry.pattern) for entry in entries]
        self.membership = Membership(app, group, "", prefer_gpus=first.gpus_first)
        self.prefixes: dict[str, str] = {}
        self.windows: dict[str, Window] = {}  # by member node; none for our own node (it waits locally)
        self._new_window = functools.partial(windows, app, group, first.window, first.window_bytes)
        self._turn = itertools.count()

    def update(self, *, joined: dict[str, int] | None = None, left: set[str] | None = None) -> None:
        """Apply member changes (from their tokens); a member that left takes its window with it."""
        self.membership.update(joined=joined, left=left)
        self.prefixes = {node: route_prefix(self.app, self.group, node) + "/" for node in self.membership.members}
        for node in left or ():
            window = self.windows.pop(node, None)
            if window is not None:
                window.close()
        for node in joined or ():
            if node not in self.windows:
                window = self._new_window(node)
                if window is not None:
                    self.windows[node] = window

    def close(self) -> None:
        """The group is gone (or the bus closes): release everything held back for it."""
        for window in self.windows.values():
            window.close()
        self.windows.clear()

    def covers(self, pattern: zenoh.KeyExpr) -> bool | None:
        """Whether the group takes every key of ``pattern`` (True), none (False), or only some (None)."""
        overlaps = False
        for own in self.patterns:
            if own.includes(pattern):
                return True
            overlaps = overlaps or own.intersects(pattern)
        return None if overlaps else False

    def target(self, msg: Message) -> str:
        """The member that takes ``msg`` (as the nodes decide it)."""
        membership = self.membership
        if self.kind == "keyed":
            return membership.owner(str(getattr(msg, self.field)))
        if self.kind == "singleton":
            return membership.owner(self.group)
        owners = membership.owners  # a pool: any member serves, so spread them in turn
        return owners[next(self._turn) % len(owners)]


def forward(bus: Bus, app: str, group: str, envelope: Envelope, owner: str) -> BaseException | None:
    """Pass a routed arrival on to ``owner``'s routed key; the error if it cannot be."""
    meta = envelope.meta
    if meta.hops >= MAX_HOPS:
        return NoRouteError(
            f"{envelope.key!r} was passed on {meta.hops} times between nodes of {app}/{group} "
            f"that disagree on its owner; this node sees {owner} as the owner"
        )
    attachment = encode_meta(msgspec.structs.replace(meta, hops=meta.hops + 1))
    try:
        bus._put(f"{route_prefix(app, group, owner)}/{envelope.key}", envelope.payload, attachment)
    except (EdabusError, zenoh.ZError) as exc:
        return exc
    return None
