"""Requests to a group of the requester's own node are served in-process, with the same semantics."""

from __future__ import annotations

import edabus
from tests.conftest import eventually


class Ask(edabus.Message, key="local/{k}/ask"):
    k: str
    n: int


class Acker(edabus.Actor):
    """Answers with an acknowledgement only (returns None)."""

    def __init__(self, k: str) -> None:
        self.k = k
        self.seen: list[int] = []

    @edabus.handler
    async def ask(self, msg: Ask) -> None:
        self.seen.append(msg.n)


class Doubler(edabus.Actor):
    """Answers with a value."""

    def __init__(self, k: str) -> None:
        self.k = k

    @edabus.handler
    async def ask(self, msg: Ask) -> int:
        return msg.n * 2


def app_of(actor: type[edabus.Actor], name: str) -> edabus.App:
    app = edabus.App(name)
    app.keyed(actor, key="k")
    return app


async def test_a_local_group_answers_without_zenoh_and_a_remote_one_still_gets_the_request(router: str) -> None:
    """Alone, our node's group answers in-process; with another process serving the type, both answer.

    The other process's reply counts as before: our group's acknowledgement does not
    settle the request, the other's value does.
    """
    async with edabus.connect(router) as bus, edabus.Node(bus, [app_of(Acker, "acks")]) as node:
        assert await bus.request(Ask(k="a", n=1)) is None  # acknowledged by our own group
        assert bus._local_routes._remote_now == {"local/*/ask": False}  # no Zenoh query was needed
        async with edabus.connect(router) as other, edabus.Node(other, [app_of(Doubler, "doubles")]):
            await eventually(lambda: bus._local_routes._remote_now["local/*/ask"])  # Zenoh's matching listener
            # Our bus counts the other's replies once it has proven the other's group (docs/security.md).
            await eventually(lambda: ("doubles", "Doubler") in bus._router.members())
            assert await bus.request(Ask(k="a", n=21), reply_type=int) == 42
        acker = node.supervisor("Acker")
        assert acker.statistics().handled == 2  # our group got both requests
