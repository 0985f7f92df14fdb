"""Fixtures of the multi-process tests."""

from __future__ import annotations

import uuid
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


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The node processes keep state in one SQLite file (several nodes, one host)."""
    path = str(tmp_path / "vault.db")
    monkeypatch.setenv("EDABUS_TEST_STORE", path)
    return path


@pytest.fixture
def postgres_store(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The node processes keep state in a table of its own on the test's PostgreSQL server."""
    monkeypatch.setenv("EDABUS_TEST_STORE", postgres_dsn)
    monkeypatch.setenv("EDABUS_TEST_TABLE", f"vault_{uuid.uuid4().hex[:12]}")
    return postgres_dsn
