"""The real GPU path: runs wherever cupy finds a device, and is skipped (saying why) elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from edabus._compute._workers import gpu_count
from examples import similarity

pytestmark = pytest.mark.skipif(gpu_count() == 0, reason="no GPU here: cupy is not installed or finds no device")


async def test_scorer_runs_on_the_gpu_and_agrees_with_numpy() -> None:
    """On a GPU the Scorer uses cupy, and its top-k equals numpy's."""
    worker = similarity.Scorer()
    await worker.on_start()
    assert worker.on_gpu is True
    query = np.random.default_rng(5).standard_normal(similarity.DIM).astype(np.float32)
    [got] = await worker.score([similarity.Query(client="g", vector=query, k=5)])
    expected = np.argsort(-(similarity.corpus() @ (query / np.linalg.norm(query))))[:5]
    assert got.ids == expected.tolist()
