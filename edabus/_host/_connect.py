"""`connect()`: open a Zenoh session as a `Bus`, with its own tasks, and close it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import zenoh

from edabus._cluster._router import Router
from edabus._exceptions import BusClosedError
from edabus._logging import get_logger
from edabus._transport._bus import Bus
from edabus._transport._config import make_config
from edabus._transport._outbox import DEFAULT_ACK_TIMEOUT, DEFAULT_MAX_UNACKED, OutboxStore

__all__ = ["connect"]

log = get_logger(__name__)


@asynccontextmanager
async def connect(
    endpoint: str | Sequence[str] | None = None,
    /,
    *,
    listen: str | Sequence[str] | None = None,
    config: str | Path | None = None,
    mode: str | None = None,
    node_id: str | None = None,
    drain_timeout: float = 10.0,
    ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    max_unacked: int = DEFAULT_MAX_UNACKED,
    routing: bool = True,
    outbox: OutboxStore | None = None,
) -> AsyncIterator[Bus]:
    """Open a bus; with no arguments, the embedded default (a peer that needs no router).

    Args:
        endpoint: router endpoint(s), e.g. ``"tcp/127.0.0.1:7447"``; makes this a client
            (positional: ``edabus.connect("tcp/127.0.0.1:7447")``).
        listen: endpoint(s) to listen on, so that other peers can connect here.
        config: a Zenoh json5 config file, read first (multicast scouting is forced off).
        mode: ``"peer"``, ``"client"`` or ``"router"``, overriding the default.
        node_id: this bus's id on the wire (default: random).
        drain_timeout: how long closing waits for nodes to take in what was published
            (and for owners to acknowledge reliable messages).
        ack_timeout: how long a reliable message waits for its owner's acknowledgement
            before it is sent again.
        max_unacked: reliable messages kept unacknowledged before `Bus.publish` waits.
        routing: send each message straight to the node that owns it, where a group has
            several (its plain key is used otherwise); False: always the plain key, for
            outside subscribers that must see every message there (docs/cluster.md).
            Either way, publishing is held back by the nodes' credit.
        outbox: keep reliable messages in this store (`SQLiteOutbox`) until their
            owners acknowledge them, so that they outlive this process: a bus opened
            later on the same store sends again what was not acknowledged
            (docs/durability.md). One bus at a time per store.

    """
    try:
        session = zenoh.open(make_config(connect=endpoint, listen=listen, config=config, mode=mode))
    except zenoh.ZError as exc:
        msg = f"cannot open a Zenoh session ({exc})"
        raise BusClosedError(msg) from exc
    try:
        kept = await outbox.open() if outbox is not None else None  # OutboxInUseError: before anything runs
    except BaseException:
        session.close()
        raise
    bus = Bus(
        session,
        node_id=node_id or uuid.uuid4().hex[:12],
        drain_timeout=drain_timeout,
        ack_timeout=ack_timeout,
        max_unacked=max_unacked,
    )
    try:
        async with anyio.create_task_group() as tg:
            bus._tg = tg
            # Learn the live groups before the first publish: a group's token is declared after
            # its subscribers, and the reply comes after their declarations on the same link.
            # Without routing the groups are followed all the same: credit needs them.
            router = Router(bus)
            router.routing = routing
            bus._router = router
            await router.start()
            tg.start_soon(router.run)
            if outbox is not None and kept is not None:
                resent = bus.outbox.restore(outbox, kept)
                if resent:
                    log.info("bus.outbox_restored", node=bus.node_id, resent=resent)
            log.debug("bus.opened", node=bus.node_id, mode=mode)
            try:
                yield bus
            finally:
                await bus.aclose()
                tg.cancel_scope.cancel()
    finally:
        await bus.aclose()
        if outbox is not None:
            with anyio.CancelScope(shield=True):
                await outbox.close()
