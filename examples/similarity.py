"""A vector-similarity service: compute workers score query vectors against a matrix.

Clients send `Query` vectors on `similarity/query/{client}`; a `Scorer` worker
keeps a matrix of unit vectors on its device (a GPU with cupy, else numpy),
scores every query that queued meanwhile in one matrix multiply (a batch
handler), and replies to each with its top-k ids and scores.

    python examples/similarity.py            # host it and query it, in one process
"""

from __future__ import annotations

import time

import anyio
import numpy as np

import edabus

ROWS, DIM = 10_000, 128


class Query(edabus.Message, key="similarity/query/{client}"):
    client: str
    vector: np.ndarray
    k: int = 5


class Matches(edabus.Message):
    ids: list[int]
    scores: list[float]


def corpus(rows: int = ROWS, dim: int = DIM, seed: int = 7) -> np.ndarray:
    """The matrix every worker holds: ``rows`` random unit vectors (the same on every node)."""
    matrix = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    unit: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


class Scorer(edabus.ComputeWorker):
    """Scores queries against the corpus by cosine similarity, a batch per matrix multiply."""

    calls = 0  # batches handled, over all workers (for the demo and the tests)

    async def on_start(self) -> None:
        await super().on_start()
        self.matrix = self.asarray(corpus())

    @edabus.handler(max_batch=64, max_delay=0.002)
    async def score(self, queries: list[Query]) -> list[Matches]:
        Scorer.calls += 1
        xp = self.xp
        batch = xp.stack([self.asarray(q.vector).astype(xp.float32) for q in queries])
        batch /= xp.linalg.norm(batch, axis=1, keepdims=True)
        scores = batch @ self.matrix.T  # (queries, rows): the one kernel of the batch
        k = max(q.k for q in queries)
        top = xp.argsort(-scores, axis=1)[:, :k]
        top_scores = xp.take_along_axis(scores, top, axis=1)
        ids, values = self.to_host(top), self.to_host(top_scores)
        return [Matches(ids=ids[i, : q.k].tolist(), scores=values[i, : q.k].tolist()) for i, q in enumerate(queries)]


app = edabus.App("similarity")
app.pool(Scorer, size=1, allow_cpu=True)  # on a GPU where a node has one, on numpy elsewhere


async def main(requests: int = 200) -> None:
    """Host the service and send it concurrent queries; print the rate and one answer."""
    rng = np.random.default_rng(1)
    queries = [rng.standard_normal(DIM).astype(np.float32) for _ in range(requests)]
    answers: list[Matches] = []
    async with edabus.connect() as bus, edabus.Node(bus, [app]):
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:

            async def ask(i: int) -> None:
                reply = await bus.request(Query(client=f"c{i % 8}", vector=queries[i]), reply_type=Matches)
                answers.append(reply)

            for i in range(requests):
                tg.start_soon(ask, i)
        elapsed = time.perf_counter() - started
    print(f"{requests} queries in {elapsed:.2f} s ({requests / elapsed:,.0f}/s), {Scorer.calls} batches")
    print(f"top-5 of one query: ids {answers[0].ids}, scores {[round(s, 3) for s in answers[0].scores]}")


if __name__ == "__main__":
    anyio.run(main)
