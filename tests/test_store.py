"""State stores: conditional writes by version, batching, and the same rules for SQLite and PostgreSQL.

Every test named without a store runs on both: SQLite on a file in tmp_path, and
PostgreSQL on a fresh table of the session's throwaway server (skipped where
no server can start).
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from edabus._durability._postgres import PostgresStore
from edabus._durability._sqlite import SQLiteStore
from edabus._durability._store import StaleStateError, StateStore, Stored
from edabus._exceptions import EdabusError
from tests.conftest import free_port

Store = SQLiteStore | PostgresStore
NS = "bank/accounts"


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Makes store objects on one storage, as separate nodes would: a file, or a table of its own."""
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        return lambda: SQLiteStore(path)
    dsn: str = request.getfixturevalue("postgres_dsn")
    table = f"t_{uuid.uuid4().hex}"
    return lambda: PostgresStore(dsn, table=table)


@pytest.fixture
async def store(make_store: Callable[[], Store]) -> AsyncIterator[Store]:
    """An open store, closed after the test."""
    opened = make_store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_store_is_a_state_store(store: Store) -> None:
    """Both stores satisfy the StateStore protocol."""
    assert isinstance(store, StateStore)


async def test_a_missing_row_loads_as_none(store: Store) -> None:
    """A key never written has no row."""
    assert await store.load(NS, "nobody") is None


async def test_first_save_inserts_version_1(store: Store) -> None:
    """Saving at version 0 creates the row at version 1."""
    assert await store.save(NS, "alice", b"\x00balance=10", 0) == 1
    assert await store.load(NS, "alice") == Stored(1, b"\x00balance=10")


async def test_save_at_the_read_version_moves_it_on(store: Store) -> None:
    """A write naming the current version succeeds and bumps it by one."""
    await store.save(NS, "alice", b"v1", 0)
    assert await store.save(NS, "alice", b"v2", 1) == 2
    assert await store.save(NS, "alice", b"v3", 2) == 3
    assert await store.load(NS, "alice") == Stored(3, b"v3")


async def test_racing_writers_one_wins_the_other_is_stale(make_store: Callable[[], Store]) -> None:
    """Two nodes read version 1; the first to write wins, the second gets StaleStateError."""
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    try:
        await first.save(NS, "alice", b"original", 0)
        read_first = await first.load(NS, "alice")
        read_second = await second.load(NS, "alice")
        assert read_first == read_second == Stored(1, b"original")
        assert await first.save(NS, "alice", b"winner", 1) == 2
        with pytest.raises(StaleStateError, match="moved past version 1"):
            await second.save(NS, "alice", b"loser", 1)
        assert await second.load(NS, "alice") == Stored(2, b"winner")
    finally:
        await second.close()
        await first.close()


async def test_inserting_over_an_existing_row_is_stale(store: Store) -> None:
    """Saving at version 0 when the row exists is refused and keeps the row."""
    await store.save(NS, "alice", b"first", 0)
    with pytest.raises(StaleStateError):
        await store.save(NS, "alice", b"second", 0)
    assert await store.load(NS, "alice") == Stored(1, b"first")


async def test_updating_a_missing_row_is_stale(store: Store) -> None:
    """Saving at a version above 0 when no row exists is refused and creates nothing."""
    with pytest.raises(StaleStateError):
        await store.save(NS, "ghost", b"data", 3)
    assert await store.load(NS, "ghost") is None


async def test_concurrent_saves_all_land_in_fewer_batches(store: Store) -> None:
    """500 actors saving at once all commit, sharing batches rather than one commit each."""
    keys = [f"k{i}" for i in range(500)]
    versions: dict[str, int] = {}

    async def save(key: str) -> None:
        versions[key] = await store.save(NS, key, key.encode(), 0)

    before = store.batches
    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(save, key)
    batches = store.batches - before
    assert versions == dict.fromkeys(keys, 1)
    assert 1 <= batches <= len(keys) // 10
    for key in keys:
        assert await store.load(NS, key) == Stored(1, key.encode())


async def test_a_stale_write_fails_alone_in_its_batch(store: Store) -> None:
    """A refused write among concurrent ones raises for itself; the others still commit."""
    await store.save(NS, "taken", b"kept", 0)
    outcomes: dict[str, int | StaleStateError] = {}

    async def save(key: str) -> None:
        try:
            outcomes[key] = await store.save(NS, key, b"new", 0)
        except StaleStateError as exc:
            outcomes[key] = exc

    keys = [f"k{i}" for i in range(50)]
    async with anyio.create_task_group() as tg:
        for key in [*keys[:25], "taken", *keys[25:]]:
            tg.start_soon(save, key)
    assert isinstance(outcomes.pop("taken"), StaleStateError)
    assert outcomes == dict.fromkeys(keys, 1)
    assert await store.load(NS, "taken") == Stored(1, b"kept")


async def test_namespaces_are_separate(store: Store) -> None:
    """The same key in two namespaces is two rows."""
    await store.save("bank/accounts", "alice", b"account", 0)
    assert await store.load("bank/audit", "alice") is None
    assert await store.save("bank/audit", "alice", b"audit", 0) == 1
    assert await store.load("bank/accounts", "alice") == Stored(1, b"account")
    assert await store.load("bank/audit", "alice") == Stored(1, b"audit")


async def test_close_then_reopen_keeps_data(make_store: Callable[[], Store]) -> None:
    """What was saved before close() is there after reopening, on the same object or a new one."""
    store = make_store()
    await store.open()
    await store.save(NS, "alice", b"saved", 0)
    await store.close()
    await store.open()
    try:
        assert await store.load(NS, "alice") == Stored(1, b"saved")
        assert await store.save(NS, "alice", b"again", 1) == 2
    finally:
        await store.close()
    fresh = make_store()
    await fresh.open()
    try:
        assert await fresh.load(NS, "alice") == Stored(2, b"again")
    finally:
        await fresh.close()


async def test_a_closed_store_refuses_requests(make_store: Callable[[], Store]) -> None:
    """load() on a store that is not open raises rather than waiting forever."""
    store = make_store()
    with pytest.raises(EdabusError, match="not open"):
        await store.load(NS, "alice")


async def test_two_nodes_on_one_storage_see_each_other(make_store: Callable[[], Store]) -> None:
    """Two stores on one file (or table), as two nodes on one host: writes cross, stale ones are refused."""
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    try:
        await first.save(NS, "alice", b"from first", 0)
        assert await second.load(NS, "alice") == Stored(1, b"from first")
        assert await second.save(NS, "alice", b"from second", 1) == 2
        assert await first.load(NS, "alice") == Stored(2, b"from second")
        with pytest.raises(StaleStateError):
            await first.save(NS, "alice", b"stale", 1)
        assert await second.load(NS, "alice") == Stored(2, b"from second")
    finally:
        await second.close()
        await first.close()


# -- PostgreSQL only ----------------------------------------------------------------------


@pytest.mark.parametrize("table", ["x; drop", "1abc", "Upper", "", "a" * 64, 'a"b', "public.t", "tab le"])
def test_postgres_table_must_be_a_plain_identifier(table: str) -> None:
    """A table name that is not a plain lowercase SQL identifier is refused at construction."""
    with pytest.raises(ValueError, match="plain SQL identifier"):
        PostgresStore("host=127.0.0.1", table=table)


@pytest.mark.parametrize("table", ["edabus_state", "_x", "a" * 63, "state2"])
def test_postgres_table_accepts_identifiers(table: str) -> None:
    """Plain identifiers are accepted, and nothing connects before open()."""
    assert PostgresStore("host=127.0.0.1", table=table).table == table


def test_postgres_repr_hides_the_dsn() -> None:
    """The DSN may hold a password: repr shows only the table."""
    assert "secret" not in repr(PostgresStore("postgresql://app:secret@db/state"))


async def test_postgres_open_fails_on_an_unreachable_server() -> None:
    """open() connects, so a server that is not there fails it at once, not at the first load."""
    psycopg = pytest.importorskip("psycopg")
    store = PostgresStore(f"host=127.0.0.1 port={free_port()} user=edabus connect_timeout=5")
    with capture_logs() as logs, pytest.raises(psycopg.OperationalError):
        await store.open()
    assert [entry["event"] for entry in logs] == ["store.batch_failed"]
    with pytest.raises(EdabusError, match="not open"):
        await store.load(NS, "alice")


async def test_postgres_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, edabus still imports and PostgresStore.open() says which extra to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # None in sys.modules makes the import fail
    store = PostgresStore("host=127.0.0.1")
    with capture_logs(), pytest.raises(ImportError, match=re.escape("pip install 'edabus[postgres]'")):
        await store.open()


async def test_postgres_reconnects_after_losing_the_connection(postgres_dsn: str) -> None:
    """A batch on a dropped connection fails with OperationalError; the next one reconnects."""
    import psycopg  # noqa: PLC0415 - present: postgres_dsn skips without it

    store = PostgresStore(postgres_dsn, table=f"t_{uuid.uuid4().hex}")
    await store.open()
    try:
        await store.save(NS, "alice", b"before", 0)
        assert store._conn is not None
        lost = store._conn.info.backend_pid
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            # The second argument waits (up to 5 s) until the backend has gone.
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (lost,)).fetchone() == (True,)
        with capture_logs(), pytest.raises(psycopg.OperationalError):
            await store.load(NS, "alice")
        assert await store.load(NS, "alice") == Stored(1, b"before")
        assert store._conn is not None
        assert store._conn.info.backend_pid != lost
    finally:
        await store.close()


async def test_postgres_without_pipeline_mode(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where libpq lacks pipeline mode (before 14), requests go one by one with the same results."""
    import psycopg  # noqa: PLC0415 - present: postgres_dsn skips without it

    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda _cls: False))
    store = PostgresStore(postgres_dsn, table=f"t_{uuid.uuid4().hex}")
    await store.open()
    try:
        assert await store.save(NS, "alice", b"v1", 0) == 1
        with pytest.raises(StaleStateError):
            await store.save(NS, "alice", b"stale", 0)
        assert await store.save(NS, "alice", b"v2", 1) == 2
        assert await store.load(NS, "alice") == Stored(2, b"v2")
        assert await store.load(NS, "nobody") is None
    finally:
        await store.close()


async def test_postgres_a_failed_batch_rolls_back_and_keeps_the_connection(postgres_dsn: str) -> None:
    """A request PostgreSQL rejects (a NUL in a text key) fails its batch; the connection stays usable."""
    import psycopg  # noqa: PLC0415 - present: postgres_dsn skips without it

    store = PostgresStore(postgres_dsn, table=f"t_{uuid.uuid4().hex}")
    await store.open()
    try:
        assert store._conn is not None
        pid = store._conn.info.backend_pid
        with capture_logs(), pytest.raises(psycopg.DataError):
            await store.save(NS, "nul\x00key", b"data", 0)
        assert await store.save(NS, "alice", b"after", 0) == 1
        assert store._conn is not None
        assert store._conn.info.backend_pid == pid
    finally:
        await store.close()
