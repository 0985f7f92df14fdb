"""Compute workers and micro-batching: batches, their bounds, replies matched, errors, the CPU path."""

from __future__ import annotations

import time
from collections import Counter

import anyio
import numpy as np
import pytest
from structlog.testing import capture_logs

import edabus
from edabus._cluster._membership import Membership
from edabus._model._wire import member_key, parse_member_key
from examples import similarity
from tests.conftest import Processes


class Job(edabus.Message, key="cmp/{lane}/job"):
    lane: str
    n: int
    fail: bool = False


class Done(edabus.Message):
    n: int
    doubled: int


batches: list[int] = []


class OutOfMemory(Exception):
    pass


class Doubler(edabus.ComputeWorker):
    starts = 0

    async def on_start(self) -> None:
        await super().on_start()
        Doubler.starts += 1

    @edabus.handler(max_batch=8)
    async def jobs(self, jobs: list[Job]) -> list[Done]:
        batches.append(len(jobs))
        if any(job.fail for job in jobs):
            raise OutOfMemory("injected: out of device memory")
        doubled = self.xp.asarray([job.n for job in jobs]) * 2
        return [Done(n=job.n, doubled=int(d)) for job, d in zip(jobs, doubled, strict=True)]


class Waiter(edabus.ComputeWorker):
    @edabus.handler(max_batch=100, max_delay=0.2)
    async def jobs(self, jobs: list[Job]) -> list[int]:
        batches.append(len(jobs))
        return [job.n for job in jobs]


@pytest.fixture(autouse=True)
def _reset() -> None:
    batches.clear()
    Doubler.starts = 0


async def ask_all(bus: edabus.Bus, jobs: list[Job]) -> list[object]:
    replies: list[object] = [None] * len(jobs)
    async with anyio.create_task_group() as tg:

        async def ask(i: int) -> None:
            replies[i] = await bus.request(jobs[i], reply_type=Done)

        for i in range(len(jobs)):
            tg.start_soon(ask, i)
    return replies


async def test_concurrent_requests_are_batched_and_each_gets_its_own_reply() -> None:
    """40 concurrent requests take fewer calls than 40, none above max_batch, replies matched."""
    app = edabus.App("cmp")
    app.pool(Doubler, size=1, allow_cpu=True)
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        replies = await ask_all(bus, [Job(lane=f"l{i % 4}", n=i) for i in range(40)])
    assert replies == [Done(n=i, doubled=2 * i) for i in range(40)]
    assert sum(batches) == 40
    assert len(batches) < 40
    assert max(batches) <= 8


async def test_max_delay_waits_for_a_fuller_batch_and_no_longer() -> None:
    """A lone request waits max_delay for company; a full batch does not wait."""
    app = edabus.App("cmp")
    app.pool(Waiter, size=1, allow_cpu=True)
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        started = time.perf_counter()
        assert await bus.request(Job(lane="a", n=1), reply_type=int) == 1
        lone = time.perf_counter() - started
    assert 0.18 <= lone < 1.5
    assert batches == [1]


async def test_a_failing_batch_fails_each_request_and_the_policy_restarts_the_worker() -> None:
    """An injected device error: every request of the batch gets it; the worker restarts and goes on."""
    app = edabus.App("cmp")
    policy = edabus.RestartPolicy(decide={OutOfMemory: "restart"}, backoff=0.0)
    app.pool(Doubler, size=1, restart=policy, allow_cpu=True)
    async with edabus.connect() as bus, edabus.Node(bus, [app]) as node:
        with pytest.raises(edabus.RemoteError, match="out of device memory") as failed:
            await bus.request(Job(lane="x", n=1, fail=True), reply_type=Done)
        assert failed.value.type_name == "OutOfMemory"
        assert await bus.request(Job(lane="x", n=5), reply_type=Done) == Done(n=5, doubled=10)
        stats = node.supervisor("Doubler").statistics()
    assert stats.restarts == 1
    assert Doubler.starts == 2


async def test_a_compute_worker_runs_on_numpy_without_a_gpu() -> None:
    """Here (no GPU) a worker computes with numpy, and the similarity example answers correctly."""
    worker = similarity.Scorer()
    await worker.on_start()
    assert worker.xp is np
    assert worker.on_gpu is False
    query = np.random.default_rng(3).standard_normal(similarity.DIM).astype(np.float32)
    [got] = await worker.score([similarity.Query(client="t", vector=query, k=3)])
    expected = np.argsort(-(similarity.corpus() @ (query / np.linalg.norm(query))))[:3]
    assert got.ids == expected.tolist()


def test_the_similarity_example_runs(processes: Processes) -> None:
    """examples/similarity.py answers its queries in fewer batches than queries."""
    done = processes.run(["examples/similarity.py"], timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    line = next(line for line in done.stdout.decode().splitlines() if "queries in" in line)
    batches_used = int(line.rsplit(",", 1)[1].split()[0])
    assert batches_used < 200


class OnGpu(edabus.ComputeWorker):
    """Fails while it believes it is on the GPU: an injected device failure."""

    @edabus.handler
    async def job(self, job: Job) -> str:
        if self.use_gpu:
            raise OutOfMemory("injected: device lost")
        return "cpu"


def gpu_app(**options: object) -> edabus.App:
    app = edabus.App("gpu")
    app.pool(OnGpu, size=1, **options)  # type: ignore[arg-type]
    return app


async def test_a_compute_group_goes_only_to_a_node_that_offers_a_gpu(router: str) -> None:
    """With one node offering a GPU (by flag) and one not, only the first hosts the group."""
    async with (
        edabus.connect(router) as bus_gpu,
        edabus.connect(router) as bus_cpu,
        edabus.Node(bus_gpu, [gpu_app(cpu_fallback=True)], gpus=[0]) as with_gpu,
        edabus.Node(bus_cpu, [gpu_app(cpu_fallback=True)], gpus=[]) as without,
        edabus.connect(router) as client,
    ):
        assert [f"{a}/{g}" for a, g in with_gpu.supervisors] == ["gpu/OnGpu"]
        assert without.supervisors == {}
        assert without.skipped == ["gpu/OnGpu"]
        await client.wait_for_group("gpu", "OnGpu", timeout=5)
        # A liveliness get right after the subscriber saw the token can come back empty
        # through a router (seen under load): ask until it answers.
        members: list[str] = []
        with anyio.fail_after(5):
            while not members:
                members = await client.live_tokens("@edabus/member/gpu/OnGpu/**")
        assert members == [f"@edabus/member/gpu/OnGpu/{bus_gpu.node_id}/gpus/1"]


async def test_without_a_gpu_node_a_compute_request_fails_fast() -> None:
    """No node offers a GPU and the group does not allow the CPU: NoRouteError at once."""
    async with edabus.connect() as bus, edabus.Node(bus, [gpu_app()], gpus=[]) as node:
        assert node.skipped == ["gpu/OnGpu"]
        with anyio.fail_after(2), pytest.raises(edabus.NoRouteError):
            await bus.request(Job(lane="g", n=1), timeout=30)


async def test_allow_cpu_hosts_the_group_on_a_node_without_a_gpu() -> None:
    """allow_cpu: a node with no GPU hosts the compute group and computes on numpy."""
    async with edabus.connect() as bus, edabus.Node(bus, [gpu_app(allow_cpu=True)], gpus=[]):
        with pytest.raises(edabus.RemoteError):  # use_gpu is still True: the injected failure
            await bus.request(Job(lane="g", n=1), reply_type=str)


async def test_a_failing_gpu_falls_back_to_the_cpu_after_the_bound() -> None:
    """cpu_fallback: once the restart bound is exhausted the group moves to numpy instead of escalating."""
    policy = edabus.RestartPolicy(default="restart", max_restarts=1, backoff=0.0)
    with capture_logs() as logs:
        async with (
            edabus.connect() as bus,
            edabus.Node(bus, [gpu_app(restart=policy, cpu_fallback=True)], gpus=[0]) as node,
        ):
            for _ in range(2):  # the first failure restarts; the second exhausts the bound
                with pytest.raises(edabus.RemoteError, match="device lost"):
                    await bus.request(Job(lane="g", n=1), reply_type=str)
            assert await bus.request(Job(lane="g", n=2), reply_type=str) == "cpu"
            stats = node.supervisor("OnGpu").statistics()
    assert stats.escalations == 0
    assert [e["event"] for e in logs if e["event"] == "group.cpu_fallback"] == ["group.cpu_fallback"]


class Lane(edabus.ComputeWorker):
    """A keyed compute worker that says which node and device it ran on."""

    def __init__(self, lane: str) -> None:
        self.lane = lane

    @edabus.handler
    async def job(self, job: Job) -> str:
        return f"{self.context.node_id}:{self.device}"


async def owners_become(membership: Membership, owners: tuple[str, ...]) -> None:
    """Wait (5 s at most) until ``membership``'s key owners are ``owners``."""
    with anyio.fail_after(5):
        while membership.owners != owners:
            changed = anyio.Event()
            membership.on_change(changed.set)
            await changed.wait()


async def test_with_allow_cpu_the_keys_go_to_the_gpu_node_while_there_is_one(router: str) -> None:
    """Both nodes host the group; the GPU label in the tokens sends every key to the GPU node."""
    app = edabus.App("lanes")
    app.keyed(Lane, key="lane", allow_cpu=True)
    async with (
        edabus.connect(router) as bus_cpu,
        edabus.connect(router) as client,
        edabus.Node(bus_cpu, [app], gpus=[]) as cpu_node,
    ):
        async with edabus.connect(router) as bus_gpu, edabus.Node(bus_gpu, [app], gpus=[0, 1]):
            membership = next(iter(cpu_node.memberships.values()))
            await owners_become(membership, (bus_gpu.node_id,))
            served = {await client.request(Job(lane=f"l{i}", n=i), reply_type=str) for i in range(20)}
            assert {s.split(":")[0] for s in served} == {bus_gpu.node_id}
            assert {s.split(":")[1] for s in served} == {"0", "1"}  # spread over the node's GPUs
        # The GPU node left: the CPU node takes the keys on numpy.
        await owners_become(membership, (bus_cpu.node_id,))
        assert await client.request(Job(lane="l0", n=0), reply_type=str) == f"{bus_cpu.node_id}:0"


def test_placement_weighs_members_by_their_gpus() -> None:
    """A member with 3 GPUs owns about three times the keys of one with 1; CPU members none."""
    membership = Membership("a", "g", "cpu", gpus=0, prefer_gpus=True)
    membership.update(joined={"one": 1, "three": 3})
    owners = Counter(membership.owner(f"k{i}") for i in range(8000))
    assert owners["cpu"] == 0
    assert 0.7 < owners["three"] / 8000 < 0.8
    plain = Membership("a", "g", "cpu", gpus=0)
    plain.update(joined={"one": 1, "three": 3})
    shares = Counter(plain.owner(f"k{i}") for i in range(9000))
    assert all(2700 < shares[m] < 3300 for m in ("cpu", "one", "three"))


def test_member_tokens_carry_the_gpu_count() -> None:
    """The token key names app, group, node and GPU count; anything else is not a member token."""
    key = member_key("bank", "Account", "n1", 2)
    assert key == "@edabus/member/bank/Account/n1/gpus/2"
    assert parse_member_key(key) == ("bank", "Account", "n1", 2)
    assert parse_member_key("@edabus/member/bank/Account/n1") is None
    assert parse_member_key("@edabus/member/bank/Account/n1/gpus/x") is None
