"""The default state store: one SQLite file, in WAL mode, safe for several nodes on one host.

Each process opens its own connection on its own store thread. Writes take
SQLite's write lock (``BEGIN IMMEDIATE``) once per batch and wait up to
``busy_timeout`` for another process that holds it. ``synchronous=NORMAL`` in WAL
mode keeps a committed write through a crash of the process (the data is in
the OS's hands); ``durable=True`` asks for ``synchronous=FULL``, which also
survives a power loss, at the price of an fsync per commit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._store import Load, Save, StaleStateError, Stored, ThreadedStore

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS edabus_state (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID
"""


class SQLiteStore(ThreadedStore):
    """Actor state in a SQLite file (created if missing).

    Args:
        path: the database file; several processes may share it.
        busy_timeout: seconds to wait for another process's write lock.
        durable: fsync every commit (``synchronous=FULL``) rather than at checkpoints.

    Attributes:
        batches: how many batches the store's thread has run; concurrent requests share one.

    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0, durable: bool = False) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.durable = durable
        self._db: sqlite3.Connection | None = None
        super().__init__(f"edabus-sqlite:{self.path.name}")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- on the store's thread -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        db.execute(_SCHEMA)
        return db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _run_batch(self, batch: list[Load | Save]) -> list[object]:
        self.batches += 1
        if self._db is None:
            self._db = self._connect()
        db = self._db
        if all(isinstance(request, Load) for request in batch):
            return [_apply(db, request) for request in batch]
        db.execute("BEGIN IMMEDIATE")
        try:
            results = [_apply(db, request) for request in batch]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return results


def _apply(db: sqlite3.Connection, request: Load | Save) -> object:
    if isinstance(request, Load):
        row = db.execute(
            "SELECT version, data FROM edabus_state WHERE namespace = ? AND key = ?",
            (request.namespace, request.key),
        ).fetchone()
        return None if row is None else Stored(row[0], bytes(row[1]))
    if request.version == 0:
        cursor = db.execute(
            "INSERT INTO edabus_state (namespace, key, version, data) VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING",
            (request.namespace, request.key, request.data),
        )
    else:
        cursor = db.execute(
            "UPDATE edabus_state SET version = version + 1, data = ? WHERE namespace = ? AND key = ? AND version = ?",
            (request.data, request.namespace, request.key, request.version),
        )
    if cursor.rowcount != 1:
        return StaleStateError(
            f"state of {request.namespace} {request.key!r} moved past version {request.version}: "
            "another activation wrote it"
        )
    return request.version + 1
