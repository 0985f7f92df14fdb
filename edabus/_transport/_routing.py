"""What the bus asks of whoever follows the live groups (`Routing`), and its answers while nobody does.

The bus sends each message on its plain key, or straight to the node that owns
it, and counts it against the credit of the nodes that hear it; it trusts only
the replies of a key's serving members. Knowing the groups, their members and
their owners is the cluster layer's (``edabus._cluster._router``), which
`connect()` puts in place: the transport only asks, through this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edabus._model._message import Message
    from edabus._model._wire import CatalogEntry

    from ._credit import Window

__all__ = ["NoRouting", "Route", "Routing"]


class Route(Protocol):
    """One group a message goes to straight: its owner, and where each member takes it in."""

    @property
    def windows(self) -> Mapping[str, Window]:
        """The credit window of each remote member (none for this bus's own node)."""
        ...

    @property
    def prefixes(self) -> Mapping[str, str]:
        """The key prefix each member takes its routed messages on."""
        ...

    def target(self, msg: Message) -> str:
        """The member that owns ``msg``."""
        ...


class Routing(Protocol):
    """The bus's view of the live groups: plans, credit windows and trusted repliers."""

    @property
    def enabled(self) -> bool:
        """Whether the groups are followed (else nothing is known, and every answer is the plain one)."""
        ...

    def plan(self, cls: type[Message]) -> Sequence[Route] | None:
        """The groups a message of ``cls`` goes to straight, or None: its plain key."""
        ...

    def windows(self, cls: type[Message]) -> Sequence[Window]:
        """The credit windows a message of ``cls`` on its plain key counts against."""
        ...

    def repliers(self, key: str) -> frozenset[str] | None:
        """The Zenoh sessions that may answer a request on ``key`` (None: anyone)."""
        ...

    def apps(self) -> list[str]:
        """The apps with a live member (``*``: not known)."""
        ...

    def members(self) -> dict[tuple[str, str], list[str]]:
        """The live members (node ids) of every ``(app, group)``."""
        ...

    def entries(self) -> list[CatalogEntry]:
        """The catalog entries of every live group."""
        ...

    def close(self) -> None:
        """Stop following (the bus is closing)."""
        ...


class NoRouting:
    """The answers while no one follows the groups: plain keys, no credit, any replier."""

    enabled = False

    def plan(self, cls: type[Message]) -> Sequence[Route] | None:  # noqa: ARG002 - the protocol's signature
        """Always the plain key."""
        return None

    def windows(self, cls: type[Message]) -> Sequence[Window]:  # noqa: ARG002 - the protocol's signature
        """No credit."""
        return ()

    def repliers(self, key: str) -> frozenset[str] | None:  # noqa: ARG002 - the protocol's signature
        """Anyone may answer."""
        return None

    def apps(self) -> list[str]:
        """Every app."""
        return ["*"]

    def members(self) -> dict[tuple[str, str], list[str]]:
        """None known."""
        return {}

    def entries(self) -> list[CatalogEntry]:
        """None known."""
        return []

    def close(self) -> None:
        """Nothing to stop."""
