"""Membership and placement: which live node owns a key, by rendezvous hashing.

Each node declares a liveliness token per group it hosts
(`@edabus/member/{app}/{group}/{node}`) and watches the tokens of its groups;
Zenoh withdraws a token when its node exits or dies, so no heartbeat of ours
is needed. Every node that sees the same members computes the same owner for a
key: the member with the highest hash of (member, key). When a member leaves,
only its keys move; when one joins, it takes a fair share.

A node always counts itself a member of the groups it hosts, from before its
token is visible to others until it stops receiving, so it never drops a
message for lack of seeing itself.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping

__all__ = ["Membership", "rendezvous_owner"]

_CACHE_LIMIT = 100_000
_SPAN = float(1 << 64)


def _score(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_owner(members: tuple[str, ...], key: str, weights: Mapping[str, int] | None = None) -> str:
    """The member that owns ``key``: the highest score of (member, key); ties by member id.

    With ``weights`` (all positive), a member's share of the keys is proportional to
    its weight (weighted rendezvous: ``-w / ln(u)`` with ``u`` the hash in (0, 1)).
    """
    if weights is None or len({weights[m] for m in members}) == 1:
        return max(members, key=lambda member: (_score(member, key), member))

    def weighted(member: str) -> tuple[float, str]:
        u = (_score(member, key) + 0.5) / _SPAN
        return -weights[member] / math.log(u), member

    return max(members, key=weighted)


class Membership:
    """The live members of one group as this node (or a publisher) sees them, and who owns what.

    Each member is labelled with how many GPUs it offers. For a group that prefers
    GPUs (compute workers), only the members with a GPU own keys while there is
    one, each in proportion to its GPU count; without any, every member does.
    """

    def __init__(self, app: str, group: str, self_id: str, *, gpus: int = 0, prefer_gpus: bool = False) -> None:
        self.app = app
        self.group = group
        self.self_id = self_id  # "": an observer (a publisher that routes), not a member
        self.prefer_gpus = prefer_gpus
        self.gpus: dict[str, int] = {self_id: gpus} if self_id else {}
        self.members: tuple[str, ...] = (self_id,) if self_id else ()
        self.owners: tuple[str, ...] = self.members  # the members that own keys
        self._weights: dict[str, int] | None = None
        self._owners: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Membership({self.app}/{self.group}: {', '.join(self.members)})"

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop thread) after every change of members."""
        self._listeners.append(listener)

    def update(self, *, joined: Mapping[str, int] | None = None, left: set[str] | None = None) -> bool:
        """Apply joins (member: GPU count) and departures (never this node's own); True if anything changed."""
        gpus = dict(self.gpus)
        gpus.update(joined or {})
        for member in (left or set()) - {self.self_id}:
            gpus.pop(member, None)
        if gpus == self.gpus:
            return False
        self.gpus = gpus
        self.members = tuple(sorted(gpus))
        with_gpus = tuple(m for m in self.members if gpus[m] > 0)
        if self.prefer_gpus and with_gpus:
            self.owners, self._weights = with_gpus, {m: gpus[m] for m in with_gpus}
        else:
            self.owners, self._weights = self.members, None
        self._owners.clear()
        for listener in self._listeners:
            listener()
        return True

    def owner(self, key: str) -> str:
        """The member that owns ``key`` in this node's view."""
        owners = self._owners
        owner = owners.get(key)
        if owner is None:
            members = self.owners
            owner = members[0] if len(members) == 1 else rendezvous_owner(members, key, self._weights)
            if len(owners) >= _CACHE_LIMIT:
                owners.clear()
            owners[key] = owner
        return owner

    def owns(self, key: str) -> bool:
        """Whether this node owns ``key``."""
        if len(self.members) == 1:
            return True
        return self.owner(key) == self.self_id
