"""Fixtures of the multi-process tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster._nodes import Cluster, ClusterFactory
from tests.conftest import Processes


@pytest.fixture
def clusters(
    processes: Processes,
    router: str,  # noqa: ARG001 - requested so that its teardown comes after ours
    tmp_path: Path,
) -> Iterator[ClusterFactory]:
    """Make clusters of node processes; their nodes are stopped before the router is."""
    made: list[Cluster] = []

    def make(target: str, app: str, groups: tuple[str, ...]) -> Cluster:
        cluster = Cluster(processes, tmp_path, target=target, app=app, groups=groups)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop_all()
