"""Micro-batching: gather the messages that queued for one batch handler into one call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._cell import Work
    from ._mailbox import Mailbox

__all__ = ["one_reply_per_message", "take_batch"]


async def take_batch(mailbox: Mailbox[Work], first: Work) -> list[Work]:
    """``first`` and the messages behind it for the same handler, up to its ``max_batch``.

    Takes what is already queued; if the batch is not full and the handler has a
    ``max_delay``, waits up to that long for more. Stops at a message for another
    handler, which keeps its place (arrival order is never changed).
    """
    spec = first.spec
    batch = [first]
    limit = spec.max_batch
    with anyio.move_on_after(spec.max_delay):
        while len(batch) < limit:
            if not mailbox:
                if not spec.max_delay:
                    break
                await mailbox.wait_not_empty()
            if mailbox.peek().spec is not spec:
                break
            batch.append(mailbox.get_nowait())
    return batch


def one_reply_per_message(results: Any, count: int) -> list[Any]:
    """A batch handler's replies, checked: one per message (None: acknowledge them all)."""
    if results is None:
        return [None] * count
    if not isinstance(results, list) or len(results) != count:
        got = len(results) if isinstance(results, list) else type(results).__name__
        raise TypeError(f"a batch handler returns a list of {count} replies, one per message; got {got}")
    return results
