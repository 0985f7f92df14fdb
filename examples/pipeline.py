"""A worker pool: interchangeable `Worker` actors count the words of each `Job`.

A job published on ``pipeline/jobs/<id>`` goes to one free worker of the pool,
which publishes a `Result` on ``pipeline/results/<id>`` for whoever listens.
The same handler answers a job sent as a request with its `Result`.

Host it:            edabus run examples.pipeline:app
Run it in-process:  python examples/pipeline.py
"""

from __future__ import annotations

import anyio

import edabus


class Job(edabus.Message, key="pipeline/jobs/{job_id}"):
    job_id: int
    text: str


class Result(edabus.Message, key="pipeline/results/{job_id}"):
    job_id: int
    words: int
    worker: str


class Worker(edabus.Actor):
    """Counts words. Workers hold no per-job state, so any of them can take any job."""

    @edabus.handler
    async def count(self, job: Job) -> Result:
        # Stands in for real work (I/O, a model call): while one worker waits,
        # the pool hands the next job to another.
        await anyio.sleep(0.01)
        result = Result(job_id=job.job_id, words=len(job.text.split()), worker=str(self.context.key))
        await self.publish(result)  # an event, for any listener on pipeline/results/*
        return result  # the reply, when the job came as a request


app = edabus.App("pipeline")
app.pool(Worker, size=4)

TEXTS = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "actors never hold references to each other",
    "a message declares the key it travels on",
    "supervisors spawn actors on demand",
    "any process that reaches the bus can publish",
    "one",
    "",
]


async def main() -> None:
    """Host the pool in this process, send it jobs, print the results."""
    async with (
        edabus.connect() as bus,
        edabus.Node(bus, [app]),
        # Subscribe before publishing: results published before this would be missed.
        bus.subscribe("pipeline/results/*") as results,
    ):
        for job_id, text in enumerate(TEXTS):
            await bus.publish(Job(job_id=job_id, text=text))

        received: dict[int, Result] = {}
        with anyio.fail_after(10):
            async for envelope in results:
                result = Result.from_bytes(envelope.payload, envelope.key)
                received[result.job_id] = result
                if len(received) == len(TEXTS):
                    break
        for job_id, result in sorted(received.items()):
            print(f"job {job_id}: {result.words} words (worker {result.worker})")

        reply = await bus.request(Job(job_id=len(TEXTS), text="sent as a request"), reply_type=Result)
        print(f"request: {reply.words} words (worker {reply.worker})")


if __name__ == "__main__":
    anyio.run(main)
