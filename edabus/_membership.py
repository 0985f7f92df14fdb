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
from collections.abc import Callable

__all__ = ["Membership", "rendezvous_owner"]

_CACHE_LIMIT = 100_000


def _score(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_owner(members: tuple[str, ...], key: str) -> str:
    """The member that owns ``key``: the highest score of (member, key); ties by member id."""
    return max(members, key=lambda member: (_score(member, key), member))


class Membership:
    """The live members of one group as this node sees them, and who owns what."""

    def __init__(self, app: str, group: str, self_id: str) -> None:
        self.app = app
        self.group = group
        self.self_id = self_id
        self.members: tuple[str, ...] = (self_id,)
        self._owners: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Membership({self.app}/{self.group}: {', '.join(self.members)})"

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop thread) after every change of members."""
        self._listeners.append(listener)

    def update(self, *, joined: set[str] = frozenset(), left: set[str] = frozenset()) -> bool:  # type: ignore[assignment]
        """Apply joins and departures (this node never leaves its own view); True if anything changed."""
        current = set(self.members)
        new = (current | set(joined)) - (set(left) - {self.self_id})
        if new == current:
            return False
        self.members = tuple(sorted(new))
        self._owners.clear()
        for listener in self._listeners:
            listener()
        return True

    def owner(self, key: str) -> str:
        """The member that owns ``key`` in this node's view."""
        owners = self._owners
        owner = owners.get(key)
        if owner is None:
            members = self.members
            owner = members[0] if len(members) == 1 else rendezvous_owner(members, key)
            if len(owners) >= _CACHE_LIMIT:
                owners.clear()
            owners[key] = owner
        return owner

    def owns(self, key: str) -> bool:
        """Whether this node owns ``key``."""
        members = self.members
        if len(members) == 1:
            return True
        return self.owner(key) == self.self_id
