"""Membership that a stranger on an open bus cannot fake or split: made-up and cloned tokens, twin ids, pauses.

Each test runs a router and bank nodes (``edabus run``) on loopback and plays the
attacker with a raw zenoh-python client: it declares liveliness tokens shaped
like a node's member token. What it must not achieve: move a key, lose a
message, or fail a request. These tests run on asyncio only: what they pin is
the nodes' behaviour.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import msgspec
import pytest
import zenoh

import edabus
from edabus._cluster._membership import rendezvous_owner
from edabus._cluster._proof import Answers, ask_identity
from edabus._cluster._status import gather_status
from examples.bank import Deposit
from tests.cluster._nodes import WAIT_S, ClusterFactory, NodeProcess, client_config, group_stats, live_actors
from tests.cluster.tally_app import Add, Read, Total
from tests.cluster.test_durability import Router
from tests.cluster.test_placement import balances, start_cluster
from tests.conftest import Processes, eventually

ACCOUNTS = 100
TALLY = "tests.cluster.tally_app:app"


@pytest.fixture
def anyio_backend() -> str:
    """One backend: the behaviour under test lives in the node processes."""
    return "asyncio"


@contextmanager
def token(endpoint: str, key: str) -> Iterator[zenoh.Session]:
    """A raw client that holds a liveliness token on ``key`` until the block ends."""
    with zenoh.open(client_config(endpoint)) as session:
        declared = session.liveliness().declare_token(key)
        try:
            yield session
        finally:
            declared.undeclare()


async def deposit_everywhere(bus: edabus.Bus) -> dict[str, int]:
    """One deposit of 1 to each account, then every balance (by request)."""
    for i in range(ACCOUNTS):
        await bus.publish(Deposit(account=f"acct{i}", amount=1))
    return await balances(bus, ACCOUNTS)


async def account_stats(bus: edabus.Bus) -> tuple[int, int]:
    """The bank's Account group over every node: (handled, not owned)."""
    stats = await group_stats(bus, "bank", "Account")
    return sum(s.handled for s in stats.values()), sum(s.not_owned for s in stats.values())


@pytest.mark.timeout(60)
async def test_a_made_up_member_token_moves_no_key(router: str, clusters: ClusterFactory) -> None:
    """A raw client declares a member token for a node that does not exist: every deposit and request still lands."""
    cluster = await start_cluster(clusters, router, "bank", ("n1", "n2"))
    with (
        token(router, "@edabus/member/bank/Account/intruder/gpus/0"),
        token(router, "@edabus/member/bank/Account/odd/gpus/many"),  # not a member token at all
    ):
        # The nodes ask who answers for the intruder; nobody does as a bank node.
        await eventually(lambda: "node.member_unproven" in cluster.nodes["n1"].events(), timeout=WAIT_S)
        await eventually(lambda: "node.member_token_unreadable" in cluster.nodes["n1"].events(), timeout=WAIT_S)
        async with edabus.connect(router) as bus:
            assert await deposit_everywhere(bus) == {f"acct{i}": 1 for i in range(ACCOUNTS)}
            handled, _ = await account_stats(bus)
            status = await gather_status(bus, timeout=2.0)
    assert handled == 2 * ACCOUNTS  # the deposits and the balance requests, each handled once
    assert cluster.view("n1", "Account") == cluster.view("n2", "Account") == {"n1", "n2"}
    assert status.members["bank/Account"] == ("n1", "n2")  # `edabus status` does not list the intruder
    events = cluster.nodes["n1"].events()
    assert events.count("node.member_unproven") == events.count("node.member_token_unreadable") == 1  # once each


@pytest.mark.timeout(60)
async def test_a_cloned_member_token_does_not_outlive_its_node(router: str, clusters: ClusterFactory) -> None:
    """A copy of n2's token, then n2 is killed: n1 takes all of n2's keys back, though the copy lives on."""
    cluster = await start_cluster(clusters, router, "bank", ("n1", "n2"))
    with token(router, "@edabus/member/bank/Account/n2/gpus/0"):
        cluster.kill("n2")
        await eventually(lambda: cluster.view("n1", "Account") == {"n1"}, timeout=WAIT_S)
        async with edabus.connect(router) as bus:
            with anyio.fail_after(WAIT_S):
                assert await deposit_everywhere(bus) == {f"acct{i}": 1 for i in range(ACCOUNTS)}


def test_a_second_node_with_a_live_node_id_refuses_to_start(processes: Processes, router: str, tmp_path: Path) -> None:
    """Two nodes under one id would both activate the same keys: the second exits 2 with a one-line error."""
    first = NodeProcess(processes, router, tmp_path / "first.log", node_id="twin")
    first.wait_until_up()
    second = processes.run(["-m", "edabus", "run", "examples.bank:app", "--connect", router, "--node-id", "twin"])
    assert second.returncode == 2
    error = second.stderr.decode().strip().splitlines()
    assert error[-1] == "error: node id 'twin' is already live on this bus; give each node its own --node-id"
    assert first.proc.poll() is None  # the first node goes on


def _logged(node: NodeProcess, event: str, **fields: object) -> int:
    """How many times ``node`` logged ``event`` with these fields."""
    return sum(1 for r in node.records() if r["event"] == event and all(r.get(k) == v for k, v in fields.items()))


@pytest.mark.timeout(90)
async def test_a_node_paused_past_its_lease_serves_no_stale_state_when_it_resumes(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """v2 is stopped (SIGSTOP) long enough for the others to take its keys, then resumed: no read from before.

    Tally nodes keep their state in one SQLite file. An `Add` sent while v2 is away
    goes to v1, which applies it to the state it loads from the store. Once v2 is back
    and owns the key again, it must answer from that state, not from the copy its actor
    held in memory before the pause; and no key may be live on both nodes.
    """
    env = {"EDABUS_VAULT_DB": str(tmp_path / "tally.db")}
    nodes: dict[str, NodeProcess] = {}
    for node_id in ("v1", "v2"):
        nodes[node_id] = NodeProcess(
            processes,
            router,
            tmp_path / f"{node_id}.log",
            target="tests.cluster.tally_app:app",
            node_id=node_id,
            env=env,
        )
        nodes[node_id].wait_until_up("tally")
    v1, v2 = nodes["v1"], nodes["v2"]
    await eventually(lambda: _logged(v1, "node.members_changed", joined=["v2"]) == 1, timeout=WAIT_S)
    name = next(f"k{i}" for i in range(100) if rendezvous_owner(("v1", "v2"), f"k{i}") == "v2")
    async with edabus.connect(router) as bus:
        await eventually(lambda: bus._router.members().get(("tally", "Tally")) == ["v1", "v2"], timeout=WAIT_S)
        await bus.publish(Add(name=name, amount=5))
        assert await bus.request(Read(name=name), reply_type=Total) == Total(5, 1)
        v2.proc.send_signal(signal.SIGSTOP)
        try:
            # v1 and this publisher both take v2 as gone: the next Add goes to v1 alone.
            await eventually(lambda: _logged(v1, "node.member_lost", member="v2") == 1, timeout=WAIT_S)
            await eventually(lambda: bus._router.members().get(("tally", "Tally")) == ["v1"], timeout=WAIT_S)
            await bus.publish(Add(name=name, amount=7))  # v1 loads 5 from the store, saves 12
            assert await bus.request(Read(name=name), reply_type=Total) == Total(12, 2)
        finally:
            v2.proc.send_signal(signal.SIGCONT)
        await eventually(lambda: _logged(v1, "node.members_changed", joined=["v2"]) == 2, timeout=WAIT_S)
        await eventually(lambda: bus._router.members().get(("tally", "Tally")) == ["v1", "v2"], timeout=WAIT_S)
        for _ in range(5):
            assert await bus.request(Read(name=name), reply_type=Total) == Total(12, 2)
        actors = await live_actors(bus)
    assert [node for node, groups in actors.items() if name in groups.get("tally/Tally", ())] == ["v2"]


@pytest.mark.timeout(60)
async def test_a_forged_reply_is_not_taken_for_the_group_s(router: str, clusters: ClusterFactory) -> None:
    """A raw queryable answers balance requests with its own figure: requesters take only the members' replies."""
    await start_cluster(clusters, router, "bank", ("n1", "n2"))
    forged = msgspec.msgpack.encode({"account": "forged", "amount": 999})

    def forge(query: zenoh.Query) -> None:
        query.reply(query.key_expr, forged)

    with zenoh.open(client_config(router)) as session:
        forger = session.declare_queryable("bank/account/*/balance", forge)
        try:
            async with edabus.connect(router) as bus:
                with anyio.fail_after(WAIT_S):
                    while not bus._router.repliers("bank/account/acct0/balance"):  # noqa: ASYNC110 - the bus's view
                        await anyio.sleep(0.01)
                assert await deposit_everywhere(bus) == {f"acct{i}": 1 for i in range(ACCOUNTS)}
        finally:
            forger.undeclare()


@pytest.mark.timeout(90)
async def test_a_node_cut_off_from_the_bus_serves_no_stale_state_when_it_comes_back(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """v2 reaches the bus through its own router, which dies and comes back: v1 served v2's key meanwhile.

    Back on the bus, v2 owns the key again; it must answer from the store (what v1
    wrote), not from the actor it held in memory before it was cut off.
    """
    edge = Router(processes)  # v2's own router, linked to the main one
    edge.start(connect=router)
    env = {"EDABUS_VAULT_DB": str(tmp_path / "tally.db")}
    v1 = NodeProcess(processes, router, tmp_path / "v1.log", target=TALLY, node_id="v1", env=env)
    v1.wait_until_up("tally")
    v2 = NodeProcess(processes, edge.endpoint, tmp_path / "v2.log", target=TALLY, node_id="v2", env=env)
    v2.wait_until_up("tally")
    await eventually(lambda: _logged(v1, "node.members_changed", joined=["v2"]) == 1, timeout=WAIT_S)
    name = next(f"k{i}" for i in range(100) if rendezvous_owner(("v1", "v2"), f"k{i}") == "v2")
    async with edabus.connect(router) as bus:
        await eventually(lambda: bus._router.members().get(("tally", "Tally")) == ["v1", "v2"], timeout=WAIT_S)
        await bus.publish(Add(name=name, amount=5))
        assert await bus.request(Read(name=name), reply_type=Total) == Total(5, 1)
        edge.kill()  # v2 is cut off; v1 and this bus see it go at once
        await eventually(lambda: bus._router.members().get(("tally", "Tally")) == ["v1"], timeout=WAIT_S)
        await eventually(lambda: _logged(v1, "node.members_changed", left=["v2"]) == 1, timeout=WAIT_S)
        await bus.publish(Add(name=name, amount=7))  # v1 loads 5 from the store, saves 12
        assert await bus.request(Read(name=name), reply_type=Total) == Total(12, 2)
        edge.start(connect=router)  # v2 comes back on the bus
        await eventually(lambda: _logged(v1, "node.members_changed", joined=["v2"]) == 2, timeout=WAIT_S)
        await eventually(lambda: bus._router.members().get(("tally", "Tally")) == ["v1", "v2"], timeout=WAIT_S)
        await eventually(lambda: _logged(v2, "node.members_changed", joined=["v1"]) >= 1, timeout=WAIT_S)
        for _ in range(5):
            assert await bus.request(Read(name=name), reply_type=Total) == Total(12, 2)
    edge.stop()


async def _asked(bus: edabus.Bus, node: str) -> Answers:
    """What one identity question about a bank node gets, through the lease's own (callback) path."""
    got: Answers = {}
    done = threading.Event()

    def finish(answers: Answers) -> None:
        got.update(answers)
        done.set()

    ask_identity(bus._session, "bank", node, finish)
    assert await anyio.to_thread.run_sync(done.wait, WAIT_S)
    return got


@pytest.mark.timeout(60)
async def test_hostile_identity_answers_prove_nothing_and_end_nothing(router: str, clusters: ClusterFactory) -> None:
    """A raw client holds a member token and answers identity questions with poison: the nodes go on, unmoved.

    The answers: the issue's 1 KB payload nested a thousand deep, a length bomb, and a
    well-formed identity for another node id. None proves the intruder.
    """
    cluster = await start_cluster(clusters, router, "bank", ("n1", "n2"))
    poison = [
        b"\x82\xa4node\xa8intruder\xa6groups" + b"\x91" * 1000 + b"\xc0",
        b"\x82\xa4node\xa8intruder\xa6groups\xdd\xff\xff\xff\xff",
        msgspec.msgpack.encode({"node": "someone-else", "groups": ["bank/Account"]}),
    ]

    def answer(query: zenoh.Query) -> None:
        for payload in poison:
            query.reply(query.key_expr, payload)

    with zenoh.open(client_config(router)) as session:
        answering = session.declare_queryable("@edabus/identity/bank/*", answer)
        try:
            with token(router, "@edabus/member/bank/Account/intruder/gpus/0"):
                await eventually(lambda: "node.member_unproven" in cluster.nodes["n1"].events(), timeout=WAIT_S)
                async with edabus.connect(router) as bus:
                    # The members are proven all the same: their own answers are not shadowed by the poison.
                    for _ in range(20):
                        assert len(await _asked(bus, "n1")) == 1  # n1's own answer, every time
                    members = ["n1", "n2"]
                    await eventually(lambda: bus._router.members().get(("bank", "Account")) == members, timeout=WAIT_S)
                    assert await deposit_everywhere(bus) == {f"acct{i}": 1 for i in range(ACCOUNTS)}
        finally:
            answering.undeclare()
    assert all(node.proc.poll() is None for node in cluster.nodes.values())
    assert cluster.view("n1", "Account") == cluster.view("n2", "Account") == {"n1", "n2"}
